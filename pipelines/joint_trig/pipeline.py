"""Community-pipeline entry point for ``DiffusionPipeline.from_pretrained(..., custom_pipeline=<this folder>)``.

diffusers loads this file and takes the one ``DiffusionPipeline`` subclass in it; the implementation lives in
the installed package (``diffusers_infoflow.pipelines.joint_trig``), so import nothing else pipeline-like here.
"""

from diffusers import DiffusionPipeline

from diffusers_infoflow.pipelines.joint_trig import JointTrigPipeline


# diffusers runs every local community pipeline file as the same module (``diffusers_modules.local.pipeline``),
# re-executed in place, so a pipeline class loaded earlier in this process would still be in this namespace and
# diffusers, which wants exactly one, would refuse to load. Drop any such leftover.
for _name in [k for k, v in globals().items() if isinstance(v, type) and issubclass(v, DiffusionPipeline) and v not in (DiffusionPipeline, JointTrigPipeline)]:
    del globals()[_name]

__all__ = ["JointTrigPipeline"]
