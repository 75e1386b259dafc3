"""diffusers schedulers of diffusers-infoflow, one file each."""

from .scheduling_entropy_hybrid import EntropyHybridScheduler, EntropyHybridSchedulerOutput
from .scheduling_s2n_generalized import S2NGeneralizedScheduler, S2NGeneralizedSchedulerOutput
from .scheduling_trig_angle_rk import TrigAngleRKScheduler, TrigAngleRKSchedulerOutput


__all__ = ["EntropyHybridScheduler", "EntropyHybridSchedulerOutput", "S2NGeneralizedScheduler", "S2NGeneralizedSchedulerOutput", "TrigAngleRKScheduler", "TrigAngleRKSchedulerOutput"]
