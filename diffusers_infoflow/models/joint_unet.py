"""JointUNet2DModel: a diffusers ``UNet2DModel`` whose output carries seed 004's two heads, ``[ε, x0]``.

Seed 004 §3.2 trains one network to predict both the noise ε (R-free DDPM head, eq. 5) and the clean image x0
(Cold-Diffusion head ``R_θ``, eq. 7). Here both heads share the whole U-Net and differ only in the output
convolution: ``out_channels = 2·in_channels``, channels ``[:C]`` are ε̂ and ``[C:]`` are x̂0. The class is a
plain ``UNet2DModel`` otherwise, so ``save_pretrained``/``from_pretrained`` and pipelines work unchanged, and
``TrigAngleRKScheduler(prediction_type="joint")`` consumes both halves.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal, Tuple

import torch
from diffusers import UNet2DModel

# model_index.json names this module as the unet's library, and diffusers' pipeline loader finds the load
# method by looking `ModelMixin` up on that module: keep it importable from here.
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401
from diffusers.models.unets.unet_2d import UNet2DOutput

from ..model_interface import split_joint_prediction


__all__ = ["JointHeadAdapter", "JointUNet2DModel", "JointUNet2DOutput", "split_joint_prediction"]


@dataclass
class JointUNet2DOutput(UNet2DOutput):
    """
    Args:
        sample (`torch.Tensor` of shape `(batch_size, 2·num_channels, height, width)`): `[ε̂, x̂0]` on channels.
    """

    @property
    def epsilon(self) -> torch.Tensor:
        """The noise head ε̂, channels ``[:C]``."""
        return split_joint_prediction(self.sample)[0]

    @property
    def x0(self) -> torch.Tensor:
        """The clean-image head x̂0, channels ``[C:]``."""
        return split_joint_prediction(self.sample)[1]


class JointUNet2DModel(UNet2DModel):
    """
    A ``UNet2DModel`` with ``out_channels = 2·in_channels`` whose output is ``[ε̂, x̂0]`` (seed 004 §3.2).

    Takes exactly ``UNet2DModel``'s arguments (its config keys, so checkpoints load with ``from_pretrained``);
    ``out_channels`` must be ``2·in_channels``, e.g. ``JointUNet2DModel(in_channels=3, out_channels=6, ...)``.
    Use :meth:`from_unet` to start from a pretrained ε model.
    """

    # Same signature as UNet2DModel.__init__ (functools.wraps keeps it visible to ConfigMixin, which reads
    # the config keys from the signature); the parent's @register_to_config records the config.
    @functools.wraps(UNet2DModel.__init__)
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.config.out_channels != 2 * self.config.in_channels:
            raise ValueError(
                f"JointUNet2DModel needs out_channels = 2·in_channels for its [ε, x0] heads; got in_channels="
                f"{self.config.in_channels}, out_channels={self.config.out_channels}."
            )

    @property
    def data_channels(self) -> int:
        """C, the channels of the data (and of each head)."""
        return self.config.in_channels

    def forward(self, sample: torch.Tensor, timestep, class_labels=None, return_dict: bool = True):
        """``UNet2DModel.forward``; the output's ``.epsilon`` and ``.x0`` give the two heads."""
        out = super().forward(sample, timestep, class_labels=class_labels, return_dict=False)[0]
        return JointUNet2DOutput(sample=out) if return_dict else (out,)

    @staticmethod
    def split_prediction(prediction: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(ε̂, x̂0) from this model's ``.sample``."""
        return split_joint_prediction(prediction)

    @classmethod
    def from_unet(cls, unet: UNet2DModel) -> "JointUNet2DModel":
        """
        A joint model from a pretrained ε-prediction ``UNet2DModel``: all weights copied, the output convolution
        widened to 2C channels. The ε head is the original head (so ``.epsilon`` equals the original output); the
        x0 head starts at zero weights and bias, i.e. x̂0 = 0, the posterior mean of centred data at high noise,
        a neutral start for fine-tuning with :func:`diffusers_infoflow.training.joint_trig_loss`.
        """
        if not isinstance(unet, UNet2DModel) or isinstance(unet, JointUNet2DModel):
            raise TypeError(f"from_unet needs a single-head UNet2DModel, got {type(unet).__name__}.")
        channels = unet.config.in_channels
        if unet.config.out_channels != channels:
            raise ValueError(
                f"from_unet needs an ε model with out_channels = in_channels ({channels}); got out_channels="
                f"{unet.config.out_channels} (a learned-variance or joint head cannot be widened this way)."
            )
        config = {k: v for k, v in unet.config.items() if not k.startswith("_")}
        joint = cls.from_config({**config, "out_channels": 2 * channels})
        state = dict(unet.state_dict())
        weight, bias = state["conv_out.weight"], state["conv_out.bias"]
        state["conv_out.weight"] = torch.cat([weight, torch.zeros_like(weight)], dim=0)
        state["conv_out.bias"] = torch.cat([bias, torch.zeros_like(bias)], dim=0)
        joint.load_state_dict(state)
        joint = joint.to(unet.device)
        # only cast when needed: diffusers warns on every dtype `to()` of a model
        return joint if joint.dtype == unet.dtype else joint.to(unet.dtype)


class JointHeadAdapter(torch.nn.Module):
    """
    One head of a joint ``[ε, x0]`` model, called like a single-head UNet, for stock diffusers schedulers.

    ``JointHeadAdapter(joint_model, "epsilon")`` gives a model whose ``.sample`` has C channels (ε̂), so
    ``DDIMScheduler``/``DPMSolverMultistepScheduler``/``DDPMScheduler`` with ``prediction_type="epsilon"`` run on
    it unchanged; ``head="sample"`` gives x̂0 for schedulers with ``prediction_type="sample"``. Slicing here is
    also what keeps ``DDPMScheduler`` from reading a 2C output as ``[ε, learned variance]``.
    """

    def __init__(self, model: torch.nn.Module, head: Literal["epsilon", "sample"] = "epsilon"):
        super().__init__()
        if head not in ("epsilon", "sample"):
            raise ValueError(f"head must be 'epsilon' or 'sample', got {head!r}.")
        in_channels, out_channels = model.config.in_channels, model.config.out_channels
        if out_channels != 2 * in_channels:
            raise ValueError(f"JointHeadAdapter needs a joint model with out_channels = 2·in_channels, got {in_channels} -> {out_channels}.")
        self.model = model
        self.head = head
        self.config = type(model.config)({**model.config, "out_channels": in_channels})

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    def forward(self, sample: torch.Tensor, timestep, *args, return_dict: bool = True, **kwargs):
        out = self.model(sample, timestep, *args, **kwargs)
        prediction = out.sample if hasattr(out, "sample") else out[0]
        eps, x0 = split_joint_prediction(prediction)
        chosen = eps if self.head == "epsilon" else x0
        return UNet2DOutput(sample=chosen) if return_dict else (chosen,)
