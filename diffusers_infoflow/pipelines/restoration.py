"""RestorationPipeline: noise clean images under schedule A, restore them with a model trained on schedule B.

Seed 000 Tables 2–5: a clean image ``x0`` is noised to paper step ``t`` of a *source* schedule A,
``x_t = α_A(t)·x0 + σ_A(t)·ε`` (the forward marginal of the schedule core), and a model trained on a
different schedule B restores it, entering B's reverse process at the entropy-matched (fractional) step, so
that the image starts at exactly its own noise level
(:meth:`~diffusers_infoflow.schedulers.EntropyHybridScheduler.set_restoration_timesteps`). The pipeline returns
the restored images, the noisy ones, and the restoration metrics (:func:`~diffusers_infoflow.metrics
.restoration_metrics`: MSE, Euclidean and RMS distance, SSIM, cosine similarity, histogram MI) of the restored
and of the noisy images against the clean ones.

Metrics are computed in ``[0, 1]`` pixel units (seed 000 App. A.1) on exactly what the pipeline returns for
``output_type="pt"``: the restored images clamped to ``[0, 1]`` and the noisy images ``x_t/2 + 1/2``
unclamped (their MI bins span the batch's own ``[min, max]``).

Checkpoints: the scheduler must be an ``EntropyHybridScheduler`` without ``segments``; any scheduler (config)
describing a variance-preserving β table (``DDPMScheduler``, ``DDIMScheduler``, ``EulerDiscreteScheduler`` and
the other k-diffusion samplers of a VP model) is converted with ``EntropyHybridScheduler.from_config``, so a
``DDPMPipeline(...).save_pretrained(dir)`` folder loads with ``DiffusionPipeline.from_pretrained(dir,
custom_pipeline="<repo>/pipelines/restoration", trust_remote_code=True)``. EDM and flow-matching configs are
taken too: the source level is then entered by its log-SNR on the model's own scale
(:meth:`~diffusers_infoflow.schedulers.EntropyHybridScheduler.set_restoration_timesteps`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Literal, Optional, Sequence, Union

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput, logging
from diffusers.utils.torch_utils import randn_tensor

from ..entropy import ScheduleLike, as_discrete_schedule
from ..images import check_batch, check_output_type, images_to_output, to_model_range
from ..metrics.restoration import restoration_metrics
from ..schedulers import EntropyHybridScheduler
from ..schedules import DiscreteSchedule
from .entropy_hybrid import as_entropy_hybrid_scheduler, check_unet_channels


logger = logging.get_logger(__name__)


__all__ = ["RestorationPipeline", "RestorationPipelineOutput"]

ImageInput = Union[torch.Tensor, np.ndarray, "PIL.Image.Image", Sequence["PIL.Image.Image"]]  # noqa: F821


@dataclass
class RestorationPipelineOutput(BaseOutput):
    """
    Args:
        images: the restored images (``output_type``: PIL list, NHWC ``np`` or NCHW ``pt``, values in [0, 1]).
        noisy_images: the noisy inputs ``x_t/2 + 1/2`` in the same format; unclamped (outside [0, 1]) for
            ``np``/``pt`` so that ``x_t = 2·noisy − 1`` exactly, clamped for PIL.
        metrics: ``{"restored": m, "noisy": m}`` with ``m = restoration_metrics(clean, ·)``, i.e.
            ``{"per_sample": {name: (N,) tensor}, "mean": {name: 0-d tensor}}``; ``None`` when
            ``compute_metrics=False``.
        start_timestep: the model timestep (of the model's training table, fractional) at which restoration starts.
    """

    images: Union[List[Any], np.ndarray, torch.Tensor]
    noisy_images: Union[List[Any], np.ndarray, torch.Tensor]
    metrics: Optional[Dict[str, Dict[str, Dict[str, torch.Tensor]]]] = None
    start_timestep: Optional[float] = None


class RestorationPipeline(DiffusionPipeline):
    """
    Restores images noised under a source schedule with a model trained on another schedule (seed 000 Tables 2–5).

    Args:
        unet: the restoring model, trained on the scheduler config's schedule B.
        scheduler: an ``EntropyHybridScheduler`` without ``segments`` (other VP β-table schedulers are converted).
    """

    model_cpu_offload_seq = "unet"

    def __init__(self, unet, scheduler):
        super().__init__()
        scheduler = as_entropy_hybrid_scheduler(scheduler)
        self.register_modules(unet=unet, scheduler=scheduler)

    # ------------------------------------------------------------------ inputs

    def prepare_images(self, images: ImageInput) -> torch.Tensor:
        """Clean images as an ``(N, C, H, W)`` float tensor in ``[-1, 1]`` on the model's device and dtype.

        Accepts a tensor in ``[-1, 1]`` (``NCHW`` or ``CHW``), a float ``np.ndarray`` in ``[0, 1]`` or a ``uint8``
        one (``NHWC`` or ``HWC``, diffusers' image convention), or PIL images (converted to ``L``/``RGB``/``RGBA``
        for 1/3/4 model channels). Raises ``ValueError`` on a wrong channel count, values outside the range or
        non-finite values.
        """
        channels = self.unet.config.in_channels
        if (isinstance(images, (list, tuple)) or getattr(images, "ndim", 0) > 0) and len(images) == 0:  # not np.ndim: it converts a PIL list
            raise ValueError("images is empty; pass at least one image.")
        if _is_pil(images) or (isinstance(images, (list, tuple)) and len(images) > 0 and all(_is_pil(im) for im in images)):
            mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(channels)
            if mode is None:
                raise ValueError(f"PIL images cannot feed a model with {channels} input channels.")
            pil = [images] if _is_pil(images) else list(images)
            sizes = {im.size for im in pil}
            if len(sizes) != 1:
                raise ValueError(f"PIL images of different sizes {sorted(sizes)}; pass images of one size.")
            images = np.stack([np.asarray(im.convert(mode)) for im in pil])
            if images.ndim == 3:
                images = images[..., None]
        if isinstance(images, np.ndarray):
            if images.ndim not in (3, 4):
                raise ValueError(f"np images must be NHWC or HWC, got shape {images.shape}.")
            x0 = to_model_range(images[None] if images.ndim == 3 else images, channels_first=False)
        elif isinstance(images, torch.Tensor):
            x0 = images.detach()
            if x0.ndim == 3:
                x0 = x0[None]
            if x0.ndim != 4 or not x0.is_floating_point():
                raise ValueError(f"tensor images must be float (N, C, H, W) or (C, H, W), got {x0.dtype} of shape {tuple(images.shape)}.")
            if not torch.isfinite(x0).all():
                raise ValueError("images contain NaN or infinite values.")
            lo, hi = float(x0.min()), float(x0.max())
            if lo < -1 or hi > 1:
                raise ValueError(f"tensor images must lie in [-1, 1] (diffusers' model space), got [{lo:.4g}, {hi:.4g}].")
            if lo >= 0 and hi > 0:  # diffusers' image processors warn the other way round
                logger.warning(f"tensor images are read in [-1, 1] (model space); these lie in [{lo:.3g}, {hi:.3g}], as a "
                               "pipeline's output_type='pt' in [0, 1] does: pass images * 2 - 1 if that is what they are.")
        else:
            raise ValueError(f"images must be a tensor, an np.ndarray or PIL image(s), got {type(images).__name__}.")
        if x0.shape[1] != channels:
            raise ValueError(f"images have {x0.shape[1]} channels but the model takes {channels}.")
        return x0.to(device=self._execution_device, dtype=self.unet.dtype)

    def source_schedule(
        self,
        source_schedule: Union[ScheduleLike, Any],
        source_num_timesteps: Optional[int] = None,
        source_params: Optional[Dict[str, float]] = None,
    ):
        """The source schedule A as a ``DiscreteSchedule`` (a name's length defaults to the model's T).

        Besides a name, an ``alphas_cumprod`` tensor or a ``DiscreteSchedule``, a diffusers scheduler or
        scheduler config of a VP model (e.g. model A's ``DDPMScheduler``) gives its training table.
        """
        if not isinstance(source_schedule, (str, torch.Tensor, DiscreteSchedule)):
            if source_num_timesteps is not None or source_params:
                raise ValueError("source_num_timesteps/source_params go with a schedule name, not with a scheduler or config.")
            converted = as_entropy_hybrid_scheduler(source_schedule)
            if not isinstance(converted.train_schedule, DiscreteSchedule):
                raise ValueError(f"source_schedule: {type(source_schedule).__name__} reads as noise_family="
                                 f"{converted.config.noise_family!r}; the source is a VP β table (a DDPM-style scheduler or config, a "
                                 "schedule name, or alphas_cumprod). Its restoring model may be EDM or flow matching.")
            return converted.train_schedule
        if isinstance(source_schedule, str) and source_num_timesteps is None:
            source_num_timesteps = self.scheduler.config.num_train_timesteps
        return as_discrete_schedule(source_schedule, source_num_timesteps, **(source_params or {}))

    # ------------------------------------------------------------------ call

    @torch.no_grad()
    def __call__(
        self,
        images: ImageInput,
        source_step: Union[int, float],
        source_schedule: Union[ScheduleLike, Any] = "linear",
        source_num_timesteps: Optional[int] = None,
        source_params: Optional[Dict[str, float]] = None,
        num_inference_steps: Optional[int] = None,
        generator: Optional[Union[torch.Generator, List[torch.Generator]]] = None,
        noise: Optional[torch.Tensor] = None,
        output_type: Literal["pil", "np", "pt"] = "pil",
        compute_metrics: bool = True,
        mi_bins: int = 256,
        return_dict: bool = True,
    ) -> Union[RestorationPipelineOutput, tuple]:
        """
        Noises ``images`` to step ``source_step`` of the source schedule, restores them, measures both.

        Args:
            images: the clean images ``x0`` (see :meth:`prepare_images`).
            source_step: the forward paper step ``1..T_A`` of the source schedule (fractional allowed).
            source_schedule: the source schedule A: a name (``linear``, ``quadratic``, ``sigmoid``, ``cosine``,
                ``power``, ``wave``, ``trig``, ``jsd`` or diffusers' aliases), an ``alphas_cumprod`` tensor, a
                ``DiscreteSchedule``, or a VP scheduler/scheduler config (its training table, e.g. model A's).
            source_num_timesteps: T of the source when it is a name; defaults to the model's
                ``num_train_timesteps``.
            source_params: the source family's parameters (``beta_start``/``beta_end``, ``s``, ...; defaults
                are the schedule core's, β ∈ [1e-4, 0.02], not the model's config).
            num_inference_steps: model calls; ``None`` = every integer step of the model's (sampling) schedule
                below the entry level.
            generator: random generator(s) for the forward noise ε and the ancestral steps.
            noise: ε itself (same shape as the images) instead of drawing it.
            output_type: ``pil``, ``np`` (NHWC) or ``pt`` (NCHW), values in [0, 1].
            compute_metrics: compute the restoration metrics.
            mi_bins: histogram bins per variable of the MI.
            return_dict: return a :class:`RestorationPipelineOutput` (True) or a tuple.

        Returns:
            :class:`RestorationPipelineOutput` or ``tuple``: the restored and noisy images, the metrics and the start
            timestep; the tuple is ``(images, noisy_images, metrics, start_timestep)``.
        """
        check_output_type(output_type)
        check_unet_channels(self.unet)
        scheduler = self.scheduler
        if not isinstance(scheduler, EntropyHybridScheduler):
            raise ValueError(
                f"the scheduler is a {type(scheduler).__name__}; assign an EntropyHybridScheduler "
                "(e.g. EntropyHybridScheduler.from_config(scheduler.config))."
            )
        if scheduler.config.segments:
            raise ValueError("RestorationPipeline needs an EntropyHybridScheduler without `segments`.")
        src = self.source_schedule(source_schedule, source_num_timesteps, source_params)
        T_src = src.num_train_timesteps
        if isinstance(source_step, bool) or not isinstance(source_step, (int, float, np.integer, np.floating)):
            raise ValueError(f"source_step must be a number (a paper step 1..{T_src}), got {source_step!r}.")
        if not 1 <= float(source_step) <= T_src:
            raise ValueError(f"source_step {source_step} is out of range; steps count 1..{T_src}.")

        # the ladder first: it refuses a source level outside the model's range before anything is drawn
        scheduler.set_restoration_timesteps(
            source_step, source_schedule=src, num_inference_steps=num_inference_steps, device=self._execution_device
        )
        x0 = self.prepare_images(images)
        check_batch(len(x0), generator)
        device = x0.device
        if noise is None:
            noise = randn_tensor(x0.shape, generator=generator, device=device, dtype=x0.dtype)
        elif tuple(noise.shape) != tuple(x0.shape):
            raise ValueError(f"noise has shape {tuple(noise.shape)} but the images have {tuple(x0.shape)}.")
        # A's forward marginal (VP), then in the restoring model's family units at the same log-SNR.
        level = torch.tensor([float(source_step) - 1.0], dtype=torch.float64)
        noisy = src.marginal(x0, noise, float(level))

        start_timestep = float(scheduler.timesteps[0])
        image = noisy * float(scheduler.interface.scale(src.logsnr(level)))
        for t in self.progress_bar(scheduler.timesteps):
            prediction = self.unet(scheduler.scale_model_input(image, t), t).sample
            image = scheduler.step(prediction, t, image, generator=generator).prev_sample

        restored01 = images_to_output(image, "pt")
        noisy01 = images_to_output(noisy, "pt", clamp=False)
        metrics = None
        if compute_metrics:
            clean01 = (x0 / 2 + 0.5).clamp(0, 1)
            noisy_range = (float(noisy01.min()), float(noisy01.max()))
            metrics = {
                "restored": restoration_metrics(clean01, restored01, mi_bins=mi_bins),
                "noisy": restoration_metrics(clean01, noisy01, mi_bins=mi_bins, mi_restored_range=noisy_range),
            }
        restored_out = images_to_output(image, output_type)
        noisy_out = images_to_output(noisy, output_type, clamp=False)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (restored_out, noisy_out, metrics, start_timestep)
        return RestorationPipelineOutput(images=restored_out, noisy_images=noisy_out, metrics=metrics, start_timestep=start_timestep)


def _is_pil(obj) -> bool:
    try:
        import PIL.Image
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, PIL.Image.Image)
