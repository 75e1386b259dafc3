"""Model classes of diffusers-infoflow."""

from .joint_unet import (
    JointHeadAdapter,
    JointUNet2DModel,
    JointUNet2DOutput,
    split_joint_prediction,
)


__all__ = ["JointHeadAdapter", "JointUNet2DModel", "JointUNet2DOutput", "split_joint_prediction"]
