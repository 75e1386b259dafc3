"""Community pipeline: ``DiffusionPipeline.from_pretrained(folder, custom_pipeline="pipelines/restoration", trust_remote_code=True)``.

The class is :class:`diffusers_infoflow.pipelines.RestorationPipeline` of the installed package.
"""

from diffusers_infoflow.pipelines import RestorationPipeline, community_pipeline


community_pipeline(globals(), RestorationPipeline)
