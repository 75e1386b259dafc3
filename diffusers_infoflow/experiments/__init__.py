"""Experiments built on the library, behind `infoflow analyze`, `infoflow sweep` and the benchmarks.

- `analysis`: entropy curves of the schedule families and seed 000's matched-step cases, with a report.
- `sweep`: γ sweeps of the generalized S2N sampler on an exact denoiser (seed 001 §4).
- `ablations`: seed 004's Table 2 as data (scheduler + config + the model each row needs).
"""
