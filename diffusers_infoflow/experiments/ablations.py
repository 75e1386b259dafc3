"""Seed 004 Table 2 as data: one row per ablation, each a scheduler class + config + the model it needs.

Our reading of the rows (seed 004 §5.1; the paper gives no code):

* ``DDIM``: a DDPM ε model on the linear schedule, sampled with diffusers' DDIM (η = 0).
* ``+β*``: the model is trained on the trig schedule ``ᾱ_t = cos²(t/T·π/2)`` (seed 004 §3.1), still sampled by DDIM.
* ``+sin(·)``: the angle parameterisation as a *sampler*: the ODE dx/dη (eqs. 10–11) with Euler steps (eq. 13),
  the linear-schedule ε model queried at its entropy-matched timesteps.
* ``+x̂0, ε̂``: a joint ``[ε, x0]`` model (eq. 12) with the DDIM update fed both heads as they are (eq. 8's ε̂
  replaced by the ε head): ``TrigAngleRKScheduler(solver="ddim", prediction_type="joint", joint_heads="separate")``.
  Every joint row reads the heads this way, as the paper does; ``overrides={"joint_heads": "velocity"}`` gives
  this project's reading (both heads as one v-prediction, see :class:`~diffusers_infoflow.TrigAngleRKScheduler`).
* combinations as in the table (the paper does not combine β* with sin(·)), and ``Ours``: trig schedule +
  sin/cos ODE + joint model + RK sampling (``rk4`` here; any solver can be swapped in with ``overrides``).

``num_inference_steps`` means model calls in the paper's table; for a multi-stage solver pass the steps that
make that many calls to ``set_timesteps`` (:func:`~diffusers_infoflow.sampling.steps_for_calls`, exact;
:func:`~diffusers_infoflow.sampling.steps_within_calls` rounds down instead of refusing, for any scheduler).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Literal, Tuple, Type

from diffusers import DDIMScheduler

from ..schedulers import TrigAngleRKScheduler
from ..schedules import get_betas


__all__ = ["SEED004_TABLE2", "AblationRow", "ablation_row"]

TrainSchedule = Literal["linear", "trig"]


@dataclass(frozen=True)
class AblationRow:
    """One row of seed 004 Table 2.

    Attributes:
        name: a short key (``ddim``, ``ddim+beta*``, ...).
        paper_label: the row's label in the paper.
        train_schedule: the β schedule the model must be trained on (``linear`` or ``trig``).
        needs_joint_model: whether the model must output ``[ε, x0]`` (a ``JointUNet2DModel``).
        scheduler_class: the sampler.
        scheduler_config: its config, apart from the training-schedule keys that :meth:`make_scheduler` adds.
    """

    name: str
    paper_label: str
    train_schedule: TrainSchedule
    needs_joint_model: bool
    scheduler_class: Type
    scheduler_config: Dict[str, Any] = field(default_factory=dict)

    def make_scheduler(self, num_train_timesteps: int = 1000, **overrides: Any):
        """The row's scheduler for a model trained with ``num_train_timesteps`` steps on ``train_schedule``."""
        if self.train_schedule == "linear":
            schedule = {"beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02}
        elif self.scheduler_class is DDIMScheduler:  # diffusers has no "trig" family: pass the table itself
            schedule = {"trained_betas": get_betas("trig", num_train_timesteps).tolist()}
        else:
            schedule = {"beta_schedule": "trig"}
        config = {"num_train_timesteps": num_train_timesteps, **schedule, **self.scheduler_config, **overrides}
        return self.scheduler_class(**config)


# DDIM baselines: start at the last training step ("trailing") and never clip x̂0, like the other rows.
_DDIM = {"timestep_spacing": "trailing", "clip_sample": False, "set_alpha_to_one": True}

# The paper's joint rows: each head as it is.
_JOINT = {"prediction_type": "joint", "joint_heads": "separate"}

SEED004_TABLE2: Tuple[AblationRow, ...] = (
    AblationRow("ddim", "DDIM", "linear", False, DDIMScheduler, _DDIM),
    AblationRow("ddim+beta*", "DDIM+β*", "trig", False, DDIMScheduler, _DDIM),
    AblationRow("ddim+sin", "DDIM+sin(·)", "linear", False, TrigAngleRKScheduler, {"solver": "euler", "prediction_type": "epsilon"}),
    AblationRow("ddim+joint", "DDIM+x̂0,ε̂", "linear", True, TrigAngleRKScheduler, {"solver": "ddim", **_JOINT}),
    AblationRow("ddim+sin+joint", "DDIM+sin(·)+x̂0,ε̂", "linear", True, TrigAngleRKScheduler, {"solver": "euler", **_JOINT}),
    AblationRow("ddim+beta*+joint", "DDIM+β*+x̂0,ε̂", "trig", True, TrigAngleRKScheduler, {"solver": "ddim", **_JOINT}),
    AblationRow("ours", "Ours", "trig", True, TrigAngleRKScheduler, {"solver": "rk4", **_JOINT}),
)


def ablation_row(name: str) -> AblationRow:
    """The row called ``name``; unknown names are an error listing the known ones."""
    for row in SEED004_TABLE2:
        if row.name == name:
            return row
    raise ValueError(f"unknown ablation row {name!r}; known: {', '.join(r.name for r in SEED004_TABLE2)}.")
