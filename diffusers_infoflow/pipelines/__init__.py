"""diffusers pipelines of diffusers-infoflow, one module each (add new ones as `from .x import XPipeline`)."""

from .joint_trig import JointTrigPipeline

__all__ = ["JointTrigPipeline"]
