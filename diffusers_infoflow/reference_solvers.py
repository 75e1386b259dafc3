"""Small functional reference solvers, in the compact style of k-diffusion's ``sampling.py``.

Each function takes a denoiser ``x0_fn(x, t) -> x̂0`` in a schedule's own time variable, a
:class:`~diffusers_infoflow.schedules.NoiseSchedule` and a descending sequence of times, and returns the final
sample. The scheduler classes are tested against these: same maths, written once more, plainly.
"""

from __future__ import annotations
