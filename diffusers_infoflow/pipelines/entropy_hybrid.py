"""EntropyHybridPipeline: seed 000 §3.2.3's hybrid reverse process, one model per schedule segment.

The reverse process walks a list of schedule segments, e.g. the paper's "Quadratic T=300 from 300 down to 178,
then Cosine T=300 from 130 to 0", switching at matched entropy ``H(x_t | x0)`` (``match_timestep(178,
src="quadratic", dst="cosine") == 130``). The scheduler is an
:class:`~diffusers_infoflow.schedulers.EntropyHybridScheduler` configured with ``segments=[...]``:

* **two models** (``unet`` trained on schedule A, ``unet_b`` on schedule B) with ``segment_models=True``: each
  segment's model is told its own native timestep of its own training table, and at step ``i`` the pipeline
  calls the model of segment ``scheduler.segment_ids[i]``. A segment whose schedule is the scheduler's training
  schedule (the config's ``beta_schedule``/``num_train_timesteps``/β range, i.e. ``unet``'s) runs ``unet``;
  every other segment runs ``unet_b``, so all of those must share one schedule (B's);
* **one model** (``unet_b=None``) with ``segment_models=False``: ``unet`` serves every segment, told the
  timestep of its own training table with the same entropy as each rung (entropy matching);
* no ``segments``: a plain entropy-guided (or, by default, exactly DDPM-ancestral) sampler with ``unet``.

:meth:`EntropyHybridPipeline.from_models` builds the segments from the two models' scheduler configs so that
the switch happens at matched entropy (:func:`entropy_matched_segments`).

Any checkpoint family :mod:`~diffusers_infoflow.model_interface` reads loads (:func:`as_entropy_hybrid_scheduler`);
two-model segments need models trained on β tables.
"""

from __future__ import annotations

from typing import Any, Dict, List, Literal, Mapping, Optional, Union

import numpy as np
import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput
from diffusers.utils import logging
from diffusers.utils.torch_utils import randn_tensor

from ..entropy import as_discrete_schedule, match_timestep
from ..images import check_batch, check_output_type, images_to_output, unet_sample_shape
from ..schedulers import EntropyHybridScheduler
from ..schedules import family_params


logger = logging.get_logger(__name__)

__all__ = [
    "EntropyHybridPipeline",
    "as_entropy_hybrid_scheduler",
    "entropy_matched_segments",
    "schedule_segment",
]

def as_entropy_hybrid_scheduler(scheduler_or_config: Union[Any, Mapping[str, Any]], **overrides: Any) -> EntropyHybridScheduler:
    """An :class:`EntropyHybridScheduler` for the model that a scheduler (or scheduler config) describes.

    Args:
        scheduler_or_config: an ``EntropyHybridScheduler`` (returned unchanged when no ``overrides``), another
            diffusers scheduler, or a config mapping (``scheduler.config``, a loaded ``scheduler_config.json``,
            or a plain dict of ``EntropyHybridScheduler`` keys such as ``{"beta_schedule": "cosine",
            "num_train_timesteps": 300}``).
        **overrides: ``EntropyHybridScheduler`` arguments to set (``eta``, ``segments``, ...).

    Raises:
        ValueError: for configs the model interface cannot honour, naming the class or key.
    """
    if isinstance(scheduler_or_config, EntropyHybridScheduler) and not overrides:
        return scheduler_or_config
    if isinstance(scheduler_or_config, Mapping):
        config = dict(scheduler_or_config)
    elif hasattr(scheduler_or_config, "config") and isinstance(getattr(scheduler_or_config, "config"), Mapping):
        config = dict(scheduler_or_config.config)
        config.setdefault("_class_name", type(scheduler_or_config).__name__)
    else:
        raise TypeError(f"expected a diffusers scheduler or a scheduler config, got {type(scheduler_or_config).__name__}.")

    return EntropyHybridScheduler.from_config(config, **overrides)


def schedule_segment(scheduler_or_config: Union[Any, Mapping[str, Any]]) -> Dict[str, Any]:
    """``{"schedule", "num_timesteps", "params"}`` of a segment whose table is exactly the model's training table.

    Raises ``ValueError`` for a ``trained_betas`` or zero-terminal-SNR table (segments are named schedule families,
    as trained).
    """
    sched = as_entropy_hybrid_scheduler(scheduler_or_config)
    cfg = sched.config
    if cfg.trained_betas is not None:
        raise ValueError("a training schedule given by `trained_betas` cannot be a segment; segments are named schedule families.")
    if cfg.rescale_betas_zero_snr:
        raise ValueError("a zero-terminal-SNR table (rescale_betas_zero_snr=True) cannot be a segment; segments are named "
                         "schedule families as they are, without the rescaling.")
    params = {k: float(v) for k, v in family_params(cfg.beta_schedule, cfg.beta_start, cfg.beta_end, cfg.schedule_params).items()}
    segment: Dict[str, Any] = {"schedule": cfg.beta_schedule, "num_timesteps": int(cfg.num_train_timesteps)}
    if params:
        segment["params"] = params
    rebuilt = as_discrete_schedule(segment["schedule"], segment["num_timesteps"], **params)
    if not torch.allclose(rebuilt.alphas_cumprod, sched.train_schedule.alphas_cumprod, rtol=1e-12, atol=0):
        raise ValueError(f"could not reproduce the training schedule {cfg.beta_schedule!r} as a segment.")  # pragma: no cover
    return segment


def entropy_matched_segments(
    scheduler_a: Union[Any, Mapping[str, Any]],
    scheduler_b: Union[Any, Mapping[str, Any]],
    switch_step: int,
    *,
    start_step: Optional[int] = None,
    end_step: int = 0,
) -> List[Dict[str, Any]]:
    """Two segments, schedule A then schedule B, switching at matched entropy (seed 000 §3.2.3).

    Segment A runs from paper step ``start_step`` (default ``T_A``) down to ``switch_step``; segment B starts at
    ``match_timestep(switch_step, src=A, dst=B)``, the step of B whose entropy ``H(x_t | x0)`` is closest to A's
    step ``switch_step``, and runs down to ``end_step``. With the scheduler's segment semantics the model of A
    is evaluated at A's steps ``start_step..switch_step + 1`` and its last update lands on B's matched level.

    Example: ``entropy_matched_segments({"beta_schedule": "quadratic", "num_train_timesteps": 300},
    {"beta_schedule": "cosine", "num_train_timesteps": 300}, 178)`` gives quadratic 300→178, cosine 130→0.
    """
    a, b = as_entropy_hybrid_scheduler(scheduler_a), as_entropy_hybrid_scheduler(scheduler_b)
    seg_a, seg_b = schedule_segment(a), schedule_segment(b)
    T_a = seg_a["num_timesteps"]
    start = T_a if start_step is None else start_step
    for name, value in (("switch_step", switch_step), ("start_step", start), ("end_step", end_step)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be an integer paper step, got {value!r}.")
    if not 1 <= switch_step < start <= T_a:
        raise ValueError(f"need 1 <= switch_step < start_step <= T_A = {T_a}, got switch_step={switch_step}, start_step={start}.")
    b_start = match_timestep(int(switch_step), src=a.train_schedule, dst=b.train_schedule)
    if not 0 <= end_step < b_start:
        raise ValueError(
            f"schedule B's matched start step is {b_start} (entropy-matched to A's step {switch_step}); end_step={end_step} "
            f"must satisfy 0 <= end_step < {b_start}."
        )
    return [
        {**seg_a, "start": int(start), "end": int(switch_step)},
        {**seg_b, "start": int(b_start), "end": int(end_step)},
    ]


def _same_table(x, y) -> bool:
    return x.num_train_timesteps == y.num_train_timesteps and torch.allclose(x.alphas_cumprod, y.alphas_cumprod, rtol=1e-10, atol=0)


def check_unet_channels(unet, name: str = "unet") -> None:
    in_channels, out_channels = unet.config.in_channels, unet.config.out_channels
    if out_channels != in_channels:
        raise ValueError(
            f"{name} has {out_channels} output channels for {in_channels} input channels; EntropyHybridScheduler needs one "
            "prediction per channel (no learned-variance or joint heads)."
        )


class EntropyHybridPipeline(DiffusionPipeline):
    """
    Unconditional generation along a hybrid of noise schedules (seed 000 §3.2.3); see the module docstring.

    Args:
        unet: the model trained on schedule A, the scheduler config's training schedule.
        scheduler: an ``EntropyHybridScheduler`` (any VP β-table scheduler is converted, see
            :func:`as_entropy_hybrid_scheduler`).
        unet_b (*optional*): the model trained on schedule B, run on the segments whose schedule is not A's when
            the scheduler has ``segment_models=True``.
    """

    model_cpu_offload_seq = "unet->unet_b"
    _optional_components = ["unet_b"]

    def __init__(self, unet, scheduler, unet_b=None):
        super().__init__()
        scheduler = as_entropy_hybrid_scheduler(scheduler)
        self.register_modules(unet=unet, scheduler=scheduler, unet_b=unet_b)

    @classmethod
    def from_models(
        cls,
        unet,
        scheduler_config,
        unet_b=None,
        scheduler_b_config=None,
        *,
        switch_step: int,
        start_step: Optional[int] = None,
        end_step: int = 0,
        **scheduler_kwargs: Any,
    ) -> "EntropyHybridPipeline":
        """A hybrid pipeline from model A (+ its scheduler or config) and model B (+ its scheduler or config).

        The segments are :func:`entropy_matched_segments` (A from ``start_step`` to ``switch_step``, then B from
        the entropy-matched step to ``end_step``). With ``unet_b`` the scheduler gets ``segment_models=True``
        (each model is told its native timesteps); with ``unet_b=None`` the one model ``unet`` serves both
        segments through entropy matching, and ``scheduler_b_config`` only names schedule B (e.g.
        ``{"beta_schedule": "cosine", "num_train_timesteps": 300}``). ``scheduler_kwargs`` go to the scheduler
        (``eta``, ``fractional_timesteps``, ...); the rest of its config is A's.

        Example (the paper's hybrid)::

            pipe = EntropyHybridPipeline.from_models(unet_q, ddpm_quadratic.config, unet_c, ddpm_cosine.config, switch_step=178)
        """
        if scheduler_b_config is None:
            raise ValueError("from_models needs `scheduler_b_config`, the schedule of the second segment (model B's training schedule).")
        config_a, config_b = as_entropy_hybrid_scheduler(scheduler_config), as_entropy_hybrid_scheduler(scheduler_b_config)
        if unet_b is not None:
            if config_a.config.prediction_type != config_b.config.prediction_type:
                raise ValueError(
                    f"the two models predict different things ({config_a.config.prediction_type!r} and "
                    f"{config_b.config.prediction_type!r}); one scheduler needs one prediction_type."
                )
            if _same_table(config_a.train_schedule, config_b.train_schedule):
                raise ValueError("the two models' training schedules are identical; a hybrid needs two schedules.")
        segments = entropy_matched_segments(config_a, config_b, switch_step, start_step=start_step, end_step=end_step)
        scheduler = EntropyHybridScheduler.from_config(
            config_a.config, **{"segments": segments, "segment_models": unet_b is not None, **scheduler_kwargs}
        )
        return cls(unet=unet, scheduler=scheduler, unet_b=unet_b)

    def segment_unets(self) -> List[str]:
        """The name of the component (``"unet"`` or ``"unet_b"``) that runs each segment id of the scheduler."""
        scheduler = self.scheduler
        if not isinstance(scheduler, EntropyHybridScheduler):
            raise ValueError(
                f"the scheduler is a {type(scheduler).__name__}; assign an EntropyHybridScheduler "
                "(e.g. EntropyHybridScheduler.from_config(scheduler.config))."
            )
        segments = scheduler._segment_schedules
        if not segments:
            return ["unet"]
        if not scheduler.config.segment_models:
            return ["unet"] * len(segments)
        names, schedule_b = [], None
        for k, (schedule, _, _) in enumerate(segments):
            if _same_table(schedule, scheduler.train_schedule):
                names.append("unet")
                continue
            if self.unet_b is None:
                raise ValueError(
                    f"segment {k} ({scheduler.config.segments[k]['schedule']}, T={schedule.num_train_timesteps}) is not unet's "
                    "training schedule and segment_models=True, but there is no unet_b; pass unet_b trained on it, or set "
                    "segment_models=False so that unet serves every segment through entropy matching."
                )
            if schedule_b is not None and not _same_table(schedule, schedule_b):
                raise ValueError(
                    f"segment {k} uses a third schedule; with segment_models=True every segment must use unet's training "
                    "schedule (the scheduler config's) or unet_b's."
                )
            schedule_b = schedule
            names.append("unet_b")
        return names

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        generator: Optional[Union[torch.Generator, List[torch.Generator]]] = None,
        num_inference_steps: Optional[int] = None,
        output_type: Literal["pil", "np", "pt"] = "pil",
        return_dict: bool = True,
    ) -> Union[ImagePipelineOutput, tuple]:
        """
        Generates images from N(0, I) along the scheduler's ladder.

        Args:
            batch_size: number of images.
            generator: random generator(s) for the initial noise and the ancestral steps.
            num_inference_steps: model calls. With segments, ``None`` runs every step of every segment (the
                paper's 252-step hybrid) and a number is shared among the segments in proportion to their
                lengths; without segments ``None`` runs every step of the sampling schedule.
            output_type: ``pil``, ``np`` (float in [0, 1], NHWC) or ``pt`` (float in [0, 1], NCHW).
            return_dict: return an ``ImagePipelineOutput`` (True) or a tuple.

        Returns:
            ``ImagePipelineOutput`` or ``tuple``: ``images`` in [0, 1] as ``output_type`` asks (PIL images, an NHWC
            array or an NCHW tensor); the tuple is ``(images,)``.
        """
        check_output_type(output_type)
        check_batch(batch_size, generator)
        names = self.segment_unets()
        models = {name: getattr(self, name) for name in set(names)}
        for name, model in models.items():
            check_unet_channels(model, name)
        if "unet_b" in models and (
            self.unet_b.config.in_channels != self.unet.config.in_channels or self.unet_b.config.sample_size != self.unet.config.sample_size
        ):
            raise ValueError("unet and unet_b must take samples of one shape (in_channels and sample_size).")
        if self.unet_b is not None and "unet_b" not in models:
            logger.warning("unet_b is not used: the scheduler has no segments with segment_models=True.")

        scheduler = self.scheduler
        if num_inference_steps is None and not scheduler.config.segments:
            num_inference_steps = scheduler.config.sampling_num_timesteps or scheduler.config.num_train_timesteps
        device = self._execution_device
        shape = (batch_size, *unet_sample_shape(self.unet.config))
        scheduler.set_timesteps(num_inference_steps, device=device)  # first: the start's scale is that of the ladder set
        image = randn_tensor(shape, generator=generator, device=device, dtype=self.unet.dtype)
        image = image * scheduler.init_noise_sigma
        segment_ids = scheduler.segment_ids.tolist()
        for i, t in enumerate(self.progress_bar(scheduler.timesteps)):
            model = models[names[segment_ids[i]]]
            model_input = scheduler.scale_model_input(image, t).to(model.dtype)
            prediction = model(model_input, t).sample.to(image.dtype)
            image = scheduler.step(prediction, t, image, generator=generator).prev_sample
        result = images_to_output(image, output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (result,)
        return ImagePipelineOutput(images=result)
