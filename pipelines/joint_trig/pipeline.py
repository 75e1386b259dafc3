"""Community-pipeline entry point for ``DiffusionPipeline.from_pretrained(..., custom_pipeline=<this folder>)``.

diffusers loads this file and takes the one ``DiffusionPipeline`` subclass in it; the implementation lives in
the installed package (``diffusers_infoflow.pipelines.joint_trig``), so import nothing else pipeline-like here.
"""

from diffusers_infoflow.pipelines.joint_trig import JointTrigPipeline

__all__ = ["JointTrigPipeline"]
