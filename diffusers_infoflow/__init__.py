"""diffusers-infoflow: information flow through noising and denoising, inside diffusers' interfaces."""

from .entropy import (
    gaussian_entropy,
    match_model_timestep,
    match_timestep,
    match_timestep_fractional,
    matched_step_table,
)
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
from .step_placement import InformationCurve, calibrate_information_curve, fit_ladder
from .testing import EmpiricalDenoiser, GaussianDenoiser


__version__ = "0.1.0"


def _register_pipelines_with_diffusers() -> None:
    """Makes our pipeline classes attributes of ``diffusers`` (names diffusers has are never replaced), because a saved
    ``model_index.json`` names its pipeline class by bare name and ``DiffusionPipeline.from_pretrained`` looks that
    name up on ``diffusers``: so a folder saved by one of our pipelines loads like any diffusers pipeline."""
    import diffusers
    from diffusers import DiffusionPipeline

    from . import pipelines as _pipelines

    for name in getattr(_pipelines, "__all__", ()):
        cls = getattr(_pipelines, name, None)
        if isinstance(cls, type) and issubclass(cls, DiffusionPipeline) and getattr(diffusers, name, None) is None:
            setattr(diffusers, name, cls)


_register_pipelines_with_diffusers()

__all__ = [
    "CONTINUOUS_SCHEDULES",
    "DISCRETE_SCHEDULES",
    "ContinuousSchedule",
    "DiscreteSchedule",
    "EmpiricalDenoiser",
    "EntropyHybridScheduler",
    "GaussianDenoiser",
    "InformationCurve",
    "JointHeadAdapter",
    "JointTrigPipeline",
    "JointUNet2DModel",
    "NoiseSchedule",
    "S2NGeneralizedScheduler",
    "TrigAngleRKScheduler",
    "calibrate_information_curve",
    "fit_ladder",
    "gaussian_entropy",
    "get_betas",
    "get_schedule",
    "match_model_timestep",
    "match_timestep",
    "match_timestep_fractional",
    "matched_step_table",
]
