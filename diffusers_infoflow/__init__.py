"""diffusers-infoflow: information flow through noising and denoising, inside diffusers' interfaces."""

from .denoisers import EmpiricalDenoiser, GaussianDenoiser
from .entropy import gaussian_entropy, match_timestep, match_timestep_fractional, matched_step_table
from .models import JointHeadAdapter, JointUNet2DModel
from .pipelines import JointTrigPipeline
from .schedulers import EntropyHybridScheduler, S2NGeneralizedScheduler, TrigAngleRKScheduler
from .schedules import (
    CONTINUOUS_SCHEDULES,
    DISCRETE_SCHEDULES,
    ContinuousSchedule,
    DiscreteSchedule,
    NoiseSchedule,
    get_betas,
    get_schedule,
)

__version__ = "0.1.0"

__all__ = [
    "CONTINUOUS_SCHEDULES",
    "DISCRETE_SCHEDULES",
    "ContinuousSchedule",
    "DiscreteSchedule",
    "EmpiricalDenoiser",
    "EntropyHybridScheduler",
    "GaussianDenoiser",
    "JointHeadAdapter",
    "JointTrigPipeline",
    "JointUNet2DModel",
    "NoiseSchedule",
    "S2NGeneralizedScheduler",
    "TrigAngleRKScheduler",
    "gaussian_entropy",
    "get_betas",
    "get_schedule",
    "match_timestep",
    "match_timestep_fractional",
    "matched_step_table",
]
