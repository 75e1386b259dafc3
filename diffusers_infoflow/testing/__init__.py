"""Ground truth for tests and benchmarks: exact denoisers that stand in for a trained UNet, and plain reference
solvers written from the papers' equations, against which the schedulers are checked."""

from .denoisers import PREDICTION_TYPES, EmpiricalDenoiser, GaussianDenoiser
from .reference_solvers import sample_s2n, sample_s2n_non_markovian, sample_trig_angle, sample_trig_multistep


__all__ = [
    "PREDICTION_TYPES",
    "EmpiricalDenoiser",
    "GaussianDenoiser",
    "sample_s2n",
    "sample_s2n_non_markovian",
    "sample_trig_angle",
    "sample_trig_multistep",
]
