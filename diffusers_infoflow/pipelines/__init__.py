"""diffusers pipelines of diffusers-infoflow, one module each (add new ones as `from .x import XPipeline`)."""

from .entropy_hybrid import EntropyHybridPipeline
from .joint_trig import JointTrigPipeline
from .restoration import RestorationPipeline, RestorationPipelineOutput


__all__ = ["EntropyHybridPipeline", "JointTrigPipeline", "RestorationPipeline", "RestorationPipelineOutput"]
