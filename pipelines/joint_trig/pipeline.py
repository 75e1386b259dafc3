"""Community pipeline: ``DiffusionPipeline.from_pretrained(folder, custom_pipeline="pipelines/joint_trig", trust_remote_code=True)``.

The class is :class:`diffusers_infoflow.pipelines.JointTrigPipeline` of the installed package.
"""

from diffusers_infoflow.pipelines import JointTrigPipeline, community_pipeline


community_pipeline(globals(), JointTrigPipeline)
