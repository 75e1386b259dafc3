"""JointTrigPipeline: unconditional image generation with a joint ``[ε, x0]`` model (seed 004).

Runs the plain diffusers loop (scale, call the model, step) with any scheduler and hands the scheduler the
part of a joint model's output it understands:

* ``TrigAngleRKScheduler(prediction_type="joint")`` (and our other schedulers): the whole ``[ε, x0]`` output,
  read as its ``joint_heads`` says (seed 004's sampler with ``"separate"``);
* a stock scheduler (``DDIMScheduler``, ``DPMSolverMultistepScheduler``, ``DDPMScheduler``, ...) with
  ``prediction_type="epsilon"`` or ``"sample"``: the ε or the x0 half;
* a single-head model: its output unchanged.

A scheduler configured for a learned variance (``variance_type="learned"``/``"learned_range"``) is refused:
the second half of a joint output is x̂0, not a variance. Loadable as a community pipeline with
``DiffusionPipeline.from_pretrained(path, custom_pipeline="<repo>/pipelines/joint_trig")``.
"""

from __future__ import annotations

from typing import List, Literal, Optional, Union

import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor

from ..images import check_batch, check_output_type, images_to_output, unet_sample_shape
from ..models.joint_unet import split_joint_prediction
from ..sampling import step_kwargs


__all__ = ["JointTrigPipeline"]

Head = Literal["joint", "epsilon", "sample", "single"]


class JointTrigPipeline(DiffusionPipeline):
    """
    Args:
        unet: a ``JointUNet2DModel`` (or any UNet-like model; single-head models pass through).
        scheduler: ``TrigAngleRKScheduler`` or a stock diffusers scheduler (see the module docstring).
    """

    model_cpu_offload_seq = "unet"

    def __init__(self, unet, scheduler):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler)

    def model_output_head(self) -> Head:
        """Which part of the model output the scheduler gets; raises ValueError on a mismatch."""
        in_channels, out_channels = self.unet.config.in_channels, self.unet.config.out_channels
        prediction_type = self.scheduler.config.get("prediction_type", "epsilon")
        if out_channels == in_channels:
            if prediction_type == "joint":
                raise ValueError(f"the scheduler expects a joint [ε, x0] output but the model has {out_channels} = in_channels channels.")
            return "single"
        if out_channels != 2 * in_channels:
            raise ValueError(f"the model has {out_channels} output channels for {in_channels} input channels; expected C or 2C.")
        if str(self.scheduler.config.get("variance_type", "")).startswith("learned"):
            raise ValueError(
                f"{type(self.scheduler).__name__} has variance_type={self.scheduler.config.variance_type!r}, but the second half "
                "of a joint model's output is x̂0, not a variance; use variance_type='fixed_small' (or another fixed type)."
            )
        if prediction_type == "joint" and not type(self.scheduler).__module__.startswith("diffusers_infoflow"):
            raise ValueError(
                f"{type(self.scheduler).__name__} cannot read a joint [ε, x0] output; build it with "
                "prediction_type='epsilon' or 'sample' (the pipeline then feeds it that head), e.g. "
                f"{type(self.scheduler).__name__}.from_config(pipe.scheduler.config, prediction_type='sample')."
            )
        if prediction_type in ("joint", "epsilon", "sample"):
            return prediction_type
        raise ValueError(f"a joint model can feed prediction_type 'joint', 'epsilon' or 'sample', not {prediction_type!r}.")

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        generator: Optional[Union[torch.Generator, List[torch.Generator]]] = None,
        num_inference_steps: int = 20,
        output_type: Literal["pil", "np", "pt"] = "pil",
        return_dict: bool = True,
    ) -> Union[ImagePipelineOutput, tuple]:
        """
        Generates images from N(0, I).

        Args:
            batch_size: number of images.
            generator: random generator(s) for the initial noise (and stochastic schedulers).
            num_inference_steps: passed to ``scheduler.set_timesteps``; for ``TrigAngleRKScheduler`` the number
                of solver steps (``order ×`` as many model calls).
            output_type: ``pil``, ``np`` (float in [0, 1], NHWC) or ``pt`` (float in [0, 1], NCHW).
            return_dict: return an ``ImagePipelineOutput`` (True) or a tuple.

        Returns:
            ``ImagePipelineOutput`` or ``tuple``: ``images`` in [0, 1] as ``output_type`` asks (PIL images, an NHWC
            array or an NCHW tensor); the tuple is ``(images,)``.
        """
        check_output_type(output_type)
        check_batch(batch_size, generator)
        head = self.model_output_head()
        shape = (batch_size, *unet_sample_shape(self.unet.config))
        self.scheduler.set_timesteps(num_inference_steps, device=self._execution_device)  # first: init_noise_sigma depends on it
        image = randn_tensor(shape, generator=generator, device=self._execution_device, dtype=self.unet.dtype)
        image = image * self.scheduler.init_noise_sigma
        extra = step_kwargs(self.scheduler, generator)
        for t in self.progress_bar(self.scheduler.timesteps):
            prediction = self.unet(self.scheduler.scale_model_input(image, t), t).sample
            if head in ("epsilon", "sample"):
                eps, x0 = split_joint_prediction(prediction)
                prediction = eps if head == "epsilon" else x0
            image = self.scheduler.step(prediction, t, image, **extra).prev_sample
        result = images_to_output(image, output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (result,)
        return ImagePipelineOutput(images=result)
