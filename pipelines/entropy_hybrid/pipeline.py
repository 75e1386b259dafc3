"""Community pipeline: ``DiffusionPipeline.from_pretrained(folder, custom_pipeline="pipelines/entropy_hybrid", trust_remote_code=True)``.

The class is :class:`diffusers_infoflow.pipelines.EntropyHybridPipeline` of the installed package.
"""

from diffusers_infoflow.pipelines import EntropyHybridPipeline, community_pipeline


community_pipeline(globals(), EntropyHybridPipeline)
