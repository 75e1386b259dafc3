"""diffusers pipelines of diffusers-infoflow, one module each (add new ones as `from .x import XPipeline`).

The classes live here; `pipelines/<name>/pipeline.py` at the repository root exposes each as a diffusers community
pipeline (`custom_pipeline=`) through :func:`community_pipeline`.
"""

from typing import Any, Dict

from .entropy_hybrid import EntropyHybridPipeline
from .joint_trig import JointTrigPipeline
from .restoration import RestorationPipeline, RestorationPipelineOutput


def community_pipeline(namespace: Dict[str, Any], pipeline_class: type) -> None:
    """Leaves `pipeline_class` the only pipeline class of a community-pipeline file's `namespace` (its `globals()`).

    diffusers runs every local community file as one module, re-executed in place, and refuses a module with more
    than one pipeline class: one that an earlier `custom_pipeline=` load left in the namespace is removed.
    """
    from diffusers import DiffusionPipeline  # noqa: PLC0415

    for name, value in list(namespace.items()):
        if isinstance(value, type) and issubclass(value, DiffusionPipeline) and value is not pipeline_class:
            del namespace[name]
    namespace["__all__"] = [pipeline_class.__name__]


__all__ = ["EntropyHybridPipeline", "JointTrigPipeline", "RestorationPipeline", "RestorationPipelineOutput", "community_pipeline"]
