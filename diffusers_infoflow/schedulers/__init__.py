"""diffusers schedulers of diffusers-infoflow, one file each."""

from .scheduling_entropy_hybrid import EntropyHybridScheduler, EntropyHybridSchedulerOutput

__all__ = ["EntropyHybridScheduler", "EntropyHybridSchedulerOutput"]
