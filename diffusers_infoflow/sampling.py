"""Sampling saved unconditional pipelines with any scheduler by name, split across processes under ``accelerate launch``.

Any saved single-head model (``DDPMPipeline`` folders from ``scripts/train.py``) or joint ``[ε, x0]`` model
(``JointTrigPipeline`` folders from ``scripts/train.py --prediction_type joint``) runs with every scheduler of
:data:`SCHEDULERS`, each built ``from_config`` of the saved (training) scheduler config (see :func:`build_scheduler`).
Budgets count model calls: multi-call solvers get as many whole steps as fit.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

from .images import unet_sample_shape
from .schedulers.scheduling_trig_angle_rk import MULTISTEP_DEFAULTS


__all__ = [
    "DEFAULT_MODEL", "DEFAULT_SCHEDULER", "DEFAULT_STEPS", "DIFFUSERS_SCHEDULERS", "INFORMATION_SAMPLER", "INFORMATION_SUBFOLDER", "JOINT_AWARE_SCHEDULERS", "MULTISTEP_SAMPLER",
    "SCHEDULERS", "TRIG_SAMPLERS",
    "SHIPPED_MODELS", "budget_note", "build_scheduler", "calibrate_pipeline", "check_pipeline_folder", "check_sampler_runs", "denoise", "download_pipeline", "generate", "information_scheduler",
    "is_hub_id", "is_joint_model", "process_state", "resolve_model", "sample_batches", "shipped_model_names", "step_kwargs", "steps_for_calls", "steps_within_calls", "training_levels",
]

SHIPPED_MODELS = Path(__file__).resolve().parent / "assets" / "models"  # the pipelines inside the package
DEFAULT_MODEL = SHIPPED_MODELS / "mnist-ddpm"
SCHEDULERS = (
    "ddpm", "ddim", "entropy-hybrid", "s2n", "s2n-stochastic", "trig-euler", "trig-rk2", "trig-rk4", "trig-ddim", "trig-multistep",
    "trig-information", "dpm++2m", "unipc", "euler", "heun",
)
# `trig-information`: TrigAngleRKScheduler's multistep solver on rungs placed by the model's measured mmse curve, saved
# in the model folder by `infoflow calibrate` (calibrate_pipeline). The measure, the power and the trailing end won
# on the shipped model (benchmarks/results/fid_race.md), the solver settings in the exact-denoiser race
# (benchmarks/results/sampler_race.md).
INFORMATION_SUBFOLDER = "scheduler_information"
INFORMATION_SAMPLER = {"solver": "multistep", **MULTISTEP_DEFAULTS, "step_spacing": "information",
                       "information_measure": "mmse_decrease", "information_power": 0.5, "ladder_end": "trailing"}
# `trig-multistep`: diffusers' `trailing` rungs (uniform in the model's time; the last step returns the x̂0 of the
# last rung, so no call is spent where x̂0 ≈ x). Against the class default (log-SNR rungs to the clean end), FID at
# 5/10/20 calls 11.96/9.61/8.44 against 52.43/16.63/8.83 on the shipped ε model and 8.31/7.02 against 15.21/7.38
# at 10/20 calls on the shipped joint model (benchmarks/README.md §2).
# The multistep options at their defaults: lower_order_final=True costs at 5 calls (§2b).
MULTISTEP_SAMPLER = {"solver": "multistep", "step_spacing": "linspace", "ladder_end": "trailing", "final_step": "x0",
                     **MULTISTEP_DEFAULTS}
# The other `trig-*` names: their solver's default rungs, whatever rungs the saved config carries (a joint model
# trained with the multistep solver saves MULTISTEP_SAMPLER's), so each name is one sampler on every model.
# `trig-rk4` ends on `trailing` rungs: its 2–5 steps at 5–20 calls then return the x̂0 of a rung where the model
# is still reliable instead of stepping to the clean end, FID 21.8/29.4/10.4/7.9 against 573/537/16.7/8.1 at
# 5/10/20/50 calls (benchmarks/README.md §2; the clean end as at commit ea3194f).
TRIG_DEFAULT_RUNGS = {"step_spacing": None, "ladder_end": "clean", "final_step": "x0"}
TRIG_SAMPLERS = {
    "trig-multistep": MULTISTEP_SAMPLER,
    "trig-rk4": {"solver": "rk4", **TRIG_DEFAULT_RUNGS, "ladder_end": "trailing"},
    **{f"trig-{solver}": {"solver": solver, **TRIG_DEFAULT_RUNGS} for solver in ("euler", "rk2", "ddim")},
}
# `infoflow sample`'s defaults, measured on the default model (benchmarks/results/fid_vs_calls.md): the highest
# confident fraction of any sampler and budget, with an FID below the real-data floor at that N.
DEFAULT_SCHEDULER, DEFAULT_STEPS = "entropy-hybrid", 20
# diffusers' built-ins of `infoflow sample` (given a joint model's x0 head); ours read both heads of a joint
# [ε, x0] output through the model interface, which samples the shipped joint model better (benchmarks/README.md §2).
DIFFUSERS_SCHEDULERS = ("ddpm", "ddim", "dpm++2m", "unipc", "euler", "heun")
JOINT_AWARE_SCHEDULERS = tuple(name for name in SCHEDULERS if name not in DIFFUSERS_SCHEDULERS)


def steps_for_calls(scheduler, model_calls: int) -> int:
    """``num_inference_steps`` giving exactly ``model_calls`` model evaluations: the scheduler's
    ``num_model_calls`` where it has one (``TrigAngleRKScheduler``: ``order·(N − 1) + 1`` calls, its last step
    being one x̂0 call), else ``order`` calls per step."""
    order = getattr(scheduler, "order", 1)
    count = getattr(scheduler, "num_model_calls", None)
    if count is None:
        if model_calls < order or model_calls % order:
            raise ValueError(f"{model_calls} model calls is not a positive multiple of the scheduler's order {order}.")
        return model_calls // order
    for steps in range(1, model_calls + 1):
        if count(steps) == model_calls:
            return steps
        if count(steps) > model_calls:
            break
    raise ValueError(f"no number of steps of {type(scheduler).__name__} (order {order}) gives exactly {model_calls} model calls.")


def steps_within_calls(scheduler, model_calls: int, max_steps: Optional[int] = None) -> Tuple[int, int]:
    """``(num_inference_steps, calls)``: the most inference steps (at most ``max_steps``) whose model calls fit in
    ``model_calls``, and how many calls they take.

    Calls are counted as ``len(scheduler.timesteps)`` after ``set_timesteps`` (the diffusers loop calls the
    model once per entry), so any scheduler works: ``TrigAngleRKScheduler.num_model_calls`` (RK4: 4·(N − 1) + 1,
    its last step being one x̂0 call), ``2·N − 1`` for diffusers' ``HeunDiscreteScheduler``, ``N`` for
    single-call schedulers. Leaves
    ``scheduler`` set to the returned number of steps. Raises ``ValueError`` when not even one step fits.
    """
    if isinstance(model_calls, bool) or not isinstance(model_calls, int) or model_calls < 1:
        raise ValueError(f"model_calls must be a positive integer, got {model_calls!r}.")
    step_limit = model_calls if max_steps is None else min(model_calls, max_steps)

    def calls_of(steps: int) -> Optional[int]:
        try:
            scheduler.set_timesteps(steps)
        except ValueError:  # e.g. more steps than training timesteps, or too few for a spacing
            return None
        return len(scheduler.timesteps)

    order = max(1, int(getattr(scheduler, "order", 1)))
    steps = max(1, min(model_calls // order, step_limit))
    calls = calls_of(steps)
    while steps > 1 and (calls is None or calls > model_calls):
        steps -= 1
        calls = calls_of(steps)
    if calls is None or calls > model_calls:
        one_step = "" if calls is None else f" (one step takes {calls})"
        raise ValueError(f"{model_calls} model call(s) are too few for one step of {type(scheduler).__name__}{one_step}.")
    while steps < step_limit:  # every step calls the model at least once
        more = calls_of(steps + 1)
        if more is None or more > model_calls:
            break
        steps, calls = steps + 1, more
    calls_of(steps)
    return steps, calls


def build_scheduler(name: str, config, joint: bool = False):
    """A scheduler of kind ``name`` from the saved (training) scheduler config.

    The prediction type is the config's (the model's), so an ε, x0 or v model is read as trained. The ``trig-*``
    names set their rungs whatever the config's (:data:`TRIG_SAMPLERS`). For a joint ``[ε, x0]`` model
    (``joint=True``) our schedulers (:data:`JOINT_AWARE_SCHEDULERS`) read both heads (``prediction_type="joint"``, as one v-prediction: ``joint_heads="velocity"``) and diffusers'
    are told ``prediction_type="sample"``: ``JointTrigPipeline`` hands them the x0 head. The x0 head, not the ε
    head, because at the noisy end of a table ε̂ enters x̂0 = (x − σ ε̂)/α divided by a tiny α (≈ 5e-5 at t = T − 1
    of the trig table, 6e-3 of the linear one): on a joint model trained on triangles every stock scheduler gave
    noise or blobs from the ε head and shapes from the x0 head.
    """
    from diffusers import (
        DDIMScheduler,
        DDPMScheduler,
        DPMSolverMultistepScheduler,
        EulerDiscreteScheduler,
        HeunDiscreteScheduler,
        UniPCMultistepScheduler,
    )

    from .schedulers import EntropyHybridScheduler, S2NGeneralizedScheduler, TrigAngleRKScheduler

    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose from {', '.join(SCHEDULERS)}.")
    if name == "trig-information":
        raise ValueError("trig-information is the model's calibrated sampler: load it with information_scheduler(model).")
    if joint:
        overrides = {"prediction_type": "joint" if name in JOINT_AWARE_SCHEDULERS else "sample"}
    else:
        overrides = {}
    if name == "s2n":
        return S2NGeneralizedScheduler.from_preset("deterministic", config, **overrides)
    if name == "s2n-stochastic":
        return S2NGeneralizedScheduler.from_preset("stochastic", config, **overrides)
    if name in TRIG_SAMPLERS:
        return TrigAngleRKScheduler.from_config(config, **TRIG_SAMPLERS[name], **overrides)
    if name == "entropy-hybrid":
        return EntropyHybridScheduler.from_config(config, **overrides)
    if name == "dpm++2m":
        overrides.update(algorithm_type="dpmsolver++", solver_order=2)
    classes = {
        "ddpm": DDPMScheduler,
        "ddim": DDIMScheduler,
        "dpm++2m": DPMSolverMultistepScheduler,
        "unipc": UniPCMultistepScheduler,
        "euler": EulerDiscreteScheduler,
        "heun": HeunDiscreteScheduler,
    }
    return classes[name].from_config(_diffusers_config(config, classes[name]), **overrides)


def _diffusers_config(config, cls) -> dict:
    """A saved config as a diffusers scheduler class reads it: one of our schedulers' own options (its solver,
    rung placement, ...) are left out, also where diffusers' class has a key of the same name (`solver_order`,
    `lower_order_final`, `predict_x0`: the diffusers sampler keeps its own defaults), and every other key is read
    as given (none replaced by the new class's default); a model our config describes in a way diffusers' β-table
    schedulers cannot read is refused."""
    import inspect

    from . import schedulers
    from .model_interface import LADDER_KEYS, OUR_CLASSES, SOURCE_SAMPLER_KEYS

    if config.get("noise_family", "discrete") != "discrete" or config.get("schedule_params"):
        raise ValueError(f"{cls.__name__} reads β tables only; this model's scheduler config describes "
                         f"noise_family={config.get('noise_family')!r}, schedule_params={config.get('schedule_params')!r}.")
    accepted = set(inspect.signature(cls.__init__).parameters)
    keys = {key for key in config if not key.startswith("_")}  # an in-memory config has no `_class_name`: its keys tell
    in_memory_ours = any(keys == set(inspect.signature(getattr(schedulers, name).__init__).parameters) - {"self"} for name in OUR_CLASSES)
    if config.get("_class_name") in OUR_CLASSES or in_memory_ours:
        accepted -= SOURCE_SAMPLER_KEYS - LADDER_KEYS
    # `_use_default_values` (the keys a config's class filled by default, e.g. a DDPMScheduler() built without a β
    # range) would make diffusers' from_config swap those for the new class's defaults, e.g. Heun's β range for a
    # DDPM's: a model is sampled on the table it was trained on.
    return {key: value for key, value in config.items() if (key in accepted or key.startswith("_")) and key != "_use_default_values"}


def is_joint_model(pipeline) -> bool:
    """Whether a loaded pipeline's model predicts ``[ε, x0]`` (a ``JointUNet2DModel``, or a joint scheduler config)."""
    from .models import JointUNet2DModel

    return isinstance(pipeline.unet, JointUNet2DModel) or pipeline.scheduler.config.get("prediction_type") == "joint"


def step_kwargs(scheduler, generator) -> dict:
    """``{"generator": generator}`` for schedulers whose ``step`` takes one (the stochastic ones), else ``{}``:
    diffusers' UniPC, Heun, DEIS and PNDM refuse the keyword."""
    import inspect

    return {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}


def denoise(scheduler, model, sample, generator=None, callback=None, **step_options):
    """diffusers' sampling loop from ``sample`` over ``scheduler.timesteps`` (set beforehand): at each timestep the
    model's output at ``scheduler.scale_model_input(sample, t)`` (at ``sample`` itself for diffusers' flow-matching
    schedulers, which have no such method and whose pipelines scale nothing), then ``scheduler.step``. Returns the
    last sample.

    Args:
        scheduler: any diffusers scheduler (ours included) after ``set_timesteps``.
        model: ``model(x, t)`` returning a tensor or an output with ``.sample``, e.g. a ``UNet2DModel``.
        sample (`torch.Tensor`): the start, already scaled (e.g. ``noise · scheduler.init_noise_sigma``).
        generator (`torch.Generator`, *optional*): the noise of stochastic steps.
        callback (`Callable`, *optional*): called as ``callback(i, t, sample, output)`` after step ``i`` with the
            sample it started from and the scheduler's output (``prev_sample``, ``pred_original_sample``).
        step_options: further keyword arguments of ``scheduler.step`` (e.g. ``LMSDiscreteScheduler``'s ``order``).
    """
    import torch

    extra = {**step_kwargs(scheduler, generator), **step_options}
    scale = getattr(scheduler, "scale_model_input", lambda x, t: x)  # FlowMatch*: SD3's and FLUX's loops scale nothing
    with torch.no_grad():
        for i, t in enumerate(scheduler.timesteps):
            output = model(scale(sample, t), t)
            stepped = scheduler.step(getattr(output, "sample", output), t, sample, **extra)
            if callback is not None:
                callback(i, t, sample, stepped)
            sample = stepped.prev_sample
    return sample


def check_sampler_runs(scheduler, num_inference_steps: int) -> None:
    """Runs ``scheduler``'s whole loop at ``num_inference_steps`` on a 2×2 zero model output (two channels for a
    ``prediction_type="joint"`` scheduler), so that a solver failing inside ``step`` at that step count (diffusers'
    UniPC with as many steps as training levels) fails before any model call, in a ``ValueError`` naming the
    error. Leaves ``scheduler`` set to ``num_inference_steps``."""
    import torch

    channels = 2 if scheduler.config.get("prediction_type") == "joint" else 1
    try:
        scheduler.set_timesteps(num_inference_steps)
        denoise(scheduler, lambda x, t: torch.zeros(1, channels, 2, 2), torch.zeros(1, 1, 2, 2))
    except Exception as err:  # noqa: BLE001  (diffusers' solvers raise AssertionError, IndexError, LinAlgError, ...)
        raise ValueError(f"{type(scheduler).__name__} cannot sample with {num_inference_steps} steps ({type(err).__name__}: {err}).") from None
    scheduler.set_timesteps(num_inference_steps)


def shipped_model_names() -> List[str]:
    """Names of the pipelines shipped inside the package (``mnist-ddpm``, ...)."""
    return sorted(p.parent.name for p in SHIPPED_MODELS.glob("*/model_index.json"))


def is_hub_id(model: str) -> bool:
    """Whether ``model`` names a Hub repository (``owner/name``) rather than a local path or a shipped model."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    model = str(model)
    if Path(model).exists() or model in shipped_model_names() or model.count("/") != 1:
        return False
    try:
        validate_repo_id(model)
    except HFValidationError:
        return False
    return True


def download_pipeline(repo_id: str) -> str:
    """The local snapshot of the Hub pipeline ``repo_id``, downloaded or found in the Hugging Face cache (offline
    too, once downloaded): diffusers' own selection of the pipeline's files (``DiffusionPipeline.download``), plus the
    calibrated ``scheduler_information/`` of ``infoflow calibrate``, which is not a pipeline component."""
    from diffusers import DiffusionPipeline
    from diffusers.utils import logging as diffusers_logging
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError

    offline = constants.HF_HUB_OFFLINE  # then only the cache is read
    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # its "Couldn't connect to the Hub ... will try the cache" is said once below
    try:
        folder = DiffusionPipeline.download(repo_id, local_files_only=offline)
        snapshot_download(repo_id, revision=Path(folder).name, allow_patterns=[f"{INFORMATION_SUBFOLDER}/*"], local_files_only=offline)
    except (OSError, ValueError) as err:  # huggingface_hub's errors are OSErrors (not found, not cached, gated ...)
        causes = [err]
        while causes[-1].__cause__ is not None:  # diffusers wraps the Hub's answer in a "not cached" error
            causes.append(causes[-1].__cause__)
        if offline:
            reason = "HF_HUB_OFFLINE is set and it is not in the Hugging Face cache"
        elif any(isinstance(cause, RepositoryNotFoundError) for cause in causes):
            reason = "the Hub has no such repository (or it is private or gated: log in with `hf auth login`)"
        else:
            reason = (str(causes[-1]).strip() or type(causes[-1]).__name__).splitlines()[0]
        raise ValueError(f"model {repo_id!r} is not a local folder nor a shipped model ({', '.join(shipped_model_names())}), "
                         f"and no Hub pipeline of that name could be loaded: {reason}.") from None
    finally:
        diffusers_logging.set_verbosity(verbosity)
    return str(folder)


def resolve_model(model: str) -> str:
    """A local folder for ``model``: the path itself, the shipped pipeline of that name (e.g. ``mnist-joint-trig``),
    or a Hub repository ``owner/name`` downloaded to the Hugging Face cache (:func:`download_pipeline`)."""
    if not Path(model).exists() and str(model) in shipped_model_names():
        return str(SHIPPED_MODELS / str(model))
    if is_hub_id(model):
        return download_pipeline(model)
    return str(model)


def check_pipeline_folder(model: str) -> None:
    """Raises ``ValueError`` unless ``model`` is a saved pipeline folder (one with ``model_index.json``)."""
    if not (Path(model) / "model_index.json").is_file():
        raise ValueError(f"model {model!r} is not a saved pipeline folder (no model_index.json in it), a shipped model "
                         f"({', '.join(shipped_model_names())}) nor a Hub repository (owner/name).")


def training_levels(model: str) -> int:
    """The number of noise levels the saved pipeline ``model`` was trained on (its scheduler's
    ``num_train_timesteps``): more steps than this cannot sample a model trained at these levels better."""
    import json

    check_pipeline_folder(model)
    config = Path(model) / "scheduler" / "scheduler_config.json"
    try:
        return int(json.loads(config.read_text())["num_train_timesteps"])
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise ValueError(f"model {model!r} has no readable scheduler config with num_train_timesteps ({config}: {err}).") from None


def pipeline_sample_shape(model: str) -> tuple:
    """``(C, H, W)`` of the samples of the saved pipeline ``model``, from its UNet config."""
    import json

    config = Path(model) / "unet" / "config.json"
    try:
        return unet_sample_shape(json.loads(config.read_text()))
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise ValueError(f"model {model!r} has no readable UNet config with in_channels and sample_size ({config}: {err}).") from None


# Below this many calls the explicit Runge-Kutta solvers take 4 steps or fewer: trig-rk4 draws digits on trailing
# rungs, but at twice or more the FID of trig-multistep (benchmarks/results/fid_vs_calls.md).
RK_MIN_MODEL_CALLS = 20


def budget_note(model_calls: int, levels: int, scheduler_name: Optional[str] = None) -> Optional[str]:
    """The message for a call budget above the model's ``levels`` training noise levels (where the steps are capped
    at ``levels``), or too small for the Runge-Kutta solvers ``trig-rk2``/``trig-rk4``; else ``None``."""
    if model_calls > levels:
        return f"--model-calls {model_calls} are more than the model's {levels} training noise levels; at most {levels} steps are taken."
    if scheduler_name in ("trig-rk2", "trig-rk4") and model_calls < RK_MIN_MODEL_CALLS:
        return (f"{scheduler_name} with {model_calls} model calls takes few Runge-Kutta steps and samples worse than "
                f"trig-multistep or trig-information there; give it {RK_MIN_MODEL_CALLS} or more.")
    return None


def generate(model: str, scheduler_name: str, model_calls: int, num_images: int, seed: int = 0, batch_size: int = 250,
             progress: bool = False, max_steps: Optional[int] = None):
    """``(images, steps, calls)``: samples in [0, 1] (``(N, C, H, W)`` float, on the CPU) from the saved pipeline
    folder ``model`` with the scheduler ``scheduler_name`` in at most ``model_calls`` model calls and ``max_steps``
    steps; see :func:`sample_batches` for the noise and, under ``accelerate launch``, which of the ``num_images``
    this process draws.

    Raises ``ValueError`` when ``model`` is not a saved pipeline folder, not even one step fits in ``model_calls`` or
    the scheduler cannot take that many steps (:func:`check_sampler_runs`).
    """
    from diffusers import DiffusionPipeline

    # (importing this package registered JointTrigPipeline with diffusers, so from_pretrained finds joint folders)
    from .pipelines.joint_trig import JointTrigPipeline

    check_pipeline_folder(model)
    if scheduler_name == "trig-information":
        scheduler = information_scheduler(model)  # first: a model without one fails before loading its weights
    saved = DiffusionPipeline.from_pretrained(model, local_files_only=True)
    if scheduler_name != "trig-information":
        scheduler = build_scheduler(scheduler_name, saved.scheduler.config, joint=is_joint_model(saved))
    steps, calls = steps_within_calls(scheduler, model_calls, max_steps)
    check_sampler_runs(scheduler, steps)
    # JointTrigPipeline runs diffusers' standard loop (init_noise_sigma, scale_model_input, step), which the
    # sigma-space schedulers (euler, heun) need and DDPMPipeline skips; a single-head model's output passes
    # through unchanged, a joint model's is split for schedulers that want one head.
    pipeline = JointTrigPipeline(unet=saved.unet, scheduler=scheduler)
    return sample_batches(pipeline, steps, num_images, seed, batch_size, progress), steps, calls


def information_scheduler(model: str):
    """The information-placed sampler saved in the pipeline folder `model` by :func:`calibrate_pipeline`.

    Raises ``ValueError`` when the folder has none, naming the command that makes one."""
    from .schedulers import TrigAngleRKScheduler

    check_pipeline_folder(model)
    if not (Path(model) / INFORMATION_SUBFOLDER / "scheduler_config.json").is_file():
        raise ValueError(f"model {model!r} has no calibrated information sampler ({INFORMATION_SUBFOLDER}/); make one with `infoflow calibrate {model}`.")
    return TrigAngleRKScheduler.from_pretrained(model, subfolder=INFORMATION_SUBFOLDER)


def calibrate_pipeline(model: str, data, num_levels: int = 32, seed: int = 0):
    """Measures the mmse curve of the saved pipeline `model` on `data` (clean images in its training range, one batch)
    and saves :data:`INFORMATION_SAMPLER` with that curve in ``model/scheduler_information``. Returns the scheduler.

    A joint ``[ε, x0]`` model's curve is that of the x̂0 the trig solvers read (both heads as one v-prediction).

    Raises ``ValueError`` when `data` does not have the model's channels and size."""
    from diffusers import DiffusionPipeline

    from .pipelines.joint_trig import JointTrigPipeline  # noqa: F401  (registers the joint pipeline with diffusers)
    from .schedulers import TrigAngleRKScheduler
    from .step_placement import calibrate_information_curve

    check_pipeline_folder(model)
    saved = DiffusionPipeline.from_pretrained(model, local_files_only=True)
    expected = unet_sample_shape(saved.unet.config)
    if tuple(data.shape[1:]) != tuple(expected):
        raise ValueError(f"the calibration images have shape {tuple(data.shape[1:])} but the model {model!r} takes {tuple(expected)}.")
    base = build_scheduler("trig-multistep", saved.scheduler.config, joint=is_joint_model(saved))
    curve = calibrate_information_curve(saved.unet, base, data, num_levels=num_levels, batch_size=len(data), seed=seed)
    scheduler = TrigAngleRKScheduler.from_config(base.config, **INFORMATION_SAMPLER, information_curve=curve)
    scheduler.save_pretrained(Path(model) / INFORMATION_SUBFOLDER)
    return scheduler


def _leave_process_group() -> None:
    """At exit, after a run that ended normally: destroys the process group (after an uncaught exception a rank may
    have a collective pending towards a dead peer, which shutdown could wait on; it exits as it would have)."""
    import sys

    import torch

    from .metrics.fid import distributed_initialized

    if distributed_initialized() and getattr(sys, "last_value", None) is None:
        torch.distributed.destroy_process_group()


def process_state():
    """accelerate's ``PartialState`` of this process: one process unless started by ``accelerate launch``, on the CPU
    when ``ACCELERATE_USE_CPU`` is set (``ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2``,
    since ``--cpu`` alone starts one process).

    A process group that this call starts is destroyed at interpreter exit (``atexit``), while that can still be
    done cleanly: left to the interpreter's teardown, Gloo's worker threads now and then abort a finished process
    (``terminate called without an active exception``). A group started before, e.g. by the caller's
    ``Accelerator``, is the caller's to destroy (``Accelerator.end_training``).

    Raises ``ValueError`` when ``torch.distributed`` runs more processes than accelerate sees (a CPU launch
    without ``ACCELERATE_USE_CPU=1``), where each process would otherwise draw every sample.
    """
    import atexit

    import torch
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    from .metrics.fid import distributed_initialized

    started_before = distributed_initialized()
    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
    if not started_before and distributed_initialized():
        atexit.register(_leave_process_group)
    if distributed_initialized():
        if torch.distributed.get_world_size() != state.num_processes:
            raise ValueError(
                f"{torch.distributed.get_world_size()} processes were launched but accelerate sees {state.num_processes}; "
                "on a machine without GPUs launch with `ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu ...`."
            )
    return state


def sample_batches(pipeline, num_inference_steps: int, num_images: int, seed: int = 0, batch_size: int = 250,
                   progress: bool = False):
    """Samples in [0, 1] (``(N, C, H, W)`` float, on the CPU) from ``pipeline`` (an unconditional pipeline with a
    ``unet``, moved to this process's device; asked for ``output_type="pt"``, and an NHWC array, which diffusers'
    ``DDPMPipeline`` and ``DDIMPipeline`` return for it, is turned to NCHW), ``batch_size`` at a time; batch ``b`` starts from the noise of ``seed + b·batch_size``
    (drawn on the CPU), so every scheduler and every device sees the same noise. ``progress`` shows diffusers'
    progress bar of each batch.

    Under ``accelerate launch`` the batches are split between the processes
    (``PartialState.split_between_processes``, contiguous and in rank order) and each process returns its own
    share, sampled on its device; gathered in rank order the shares are the one-process result.
    """
    import numpy as np
    import torch

    state = process_state()
    pipeline.to(state.device)
    pipeline.set_progress_bar_config(disable=not progress)
    chunks = [torch.empty(0, *unet_sample_shape(pipeline.unet.config))]
    with state.split_between_processes(list(range(0, num_images, batch_size))) as starts:
        for start in starts:
            generator = torch.Generator().manual_seed(seed + start)
            n = min(batch_size, num_images - start)
            images = pipeline(batch_size=n, num_inference_steps=num_inference_steps, generator=generator, output_type="pt").images
            chunks.append(torch.from_numpy(images).permute(0, 3, 1, 2) if isinstance(images, np.ndarray) else images.cpu())
    return torch.cat(chunks)
