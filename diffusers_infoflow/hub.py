"""Model cards and Hub uploads for trained pipelines.

The card is rendered from ``model_cards/ddpm_model_card.md`` with huggingface_hub's ``ModelCard``; it shows
the training configuration, the schedule with its entropy curve (:func:`diffusers_infoflow.gaussian_entropy`)
and a grid of samples drawn with any `infoflow sample` scheduler (by default DDIM, or a joint ``[ε, x0]`` model's
own saved ``TrigAngleRKScheduler``). :func:`push_folder` uploads an output folder with ``HfApi.create_repo`` and
``HfApi.upload_folder``; the token comes from the environment (``HF_TOKEN``) or the local login and is never
printed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Optional, Tuple

import torch

from .sampling import SCHEDULERS


# assets/model_cards is a symlink to the repository's model_cards/, so wheels ship the template as package data.
MODEL_CARD_TEMPLATE = Path(__file__).resolve().parent / "assets" / "model_cards" / "ddpm_model_card.md"
SAMPLE_GRID_FILE = "samples.png"
ENTROPY_CURVE_FILE = "entropy.png"
# Never uploaded: resumable training state and tracker logs.
UPLOAD_IGNORE_PATTERNS = ["checkpoint-*", "checkpoint-*/**", "logs/**", "*.tmp/**"]
# A card's grid can be drawn by any `infoflow sample` scheduler but the calibrated one, which a new model lacks.
CARD_SCHEDULERS = tuple(name for name in SCHEDULERS if name != "trig-information")


def default_card_scheduler(scheduler_config, joint: bool) -> str:
    """The `infoflow sample` name of the sampler a card draws with when none is chosen: the saved trig solver of a
    joint ``[ε, x0]`` model (its pipeline's own), DDIM for any other."""
    return f"trig-{scheduler_config['solver']}" if joint else "ddim"


def card_scheduler(scheduler_config, model_calls: int, joint: bool, name: Optional[str] = None) -> Tuple[object, int, str]:
    """The sampler of a card's grid: ``(scheduler, num_inference_steps, description)``.

    Args:
        scheduler_config: the pipeline's saved (training) scheduler config.
        model_calls (`int`): the grid's budget; the sampler takes as many whole steps as fit, at most one per
            training level (as `infoflow sample` does).
        joint (`bool`): whether the model predicts ``[ε, x0]``.
        name (`str`, *optional*): one of :data:`CARD_SCHEDULERS`; default :func:`default_card_scheduler`.

    Raises ``ValueError`` when not even one step fits in ``model_calls``.
    """
    from .sampling import build_scheduler, steps_within_calls

    name = name or default_card_scheduler(scheduler_config, joint)
    scheduler = build_scheduler(name, scheduler_config, joint=joint)
    steps, calls = steps_within_calls(scheduler, model_calls, max_steps=int(scheduler_config["num_train_timesteps"]))
    solver = scheduler.config.get("solver")
    kind = type(scheduler).__name__ + (f" ({solver})" if solver else "")
    return scheduler, steps, f"{kind} with {steps} step{'s' if steps != 1 else ''} = {calls} model calls"


def render_sample_grid(output_dir: str, num_samples: int, model_calls: int, seed: int, scheduler_name: str) -> Optional[str]:
    """Samples the saved pipeline in ``output_dir`` as ``infoflow sample`` does (:func:`~diffusers_infoflow.sampling.generate`:
    the same noise, scheduler and model calls, one batch) and writes ``samples.png``; returns the file name, or
    ``None`` when ``num_samples`` is 0."""
    from PIL import Image

    from .images import make_grid, to_model_range
    from .sampling import generate, training_levels

    if num_samples < 1:
        return None
    images, _, _ = generate(output_dir, scheduler_name, model_calls, num_samples, seed, batch_size=num_samples,
                            max_steps=training_levels(output_dir))
    Image.fromarray(make_grid(to_model_range(images))).save(os.path.join(output_dir, SAMPLE_GRID_FILE))
    return SAMPLE_GRID_FILE


def render_entropy_curve(output_dir: str, alphas_cumprod: torch.Tensor, sample_shape, title: str) -> str:
    """Plots ``H(x_t | x0)`` against the step ``t`` into ``entropy.png``; returns the file name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .entropy import gaussian_entropy

    entropy = gaussian_entropy(alphas_cumprod.to(torch.float64), tuple(sample_shape))
    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    ax.plot(range(1, len(entropy) + 1), entropy.numpy())
    ax.set_xlabel("step t")
    ax.set_ylabel("H(x_t | x_0) [nats]")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(os.path.join(output_dir, ENTROPY_CURVE_FILE))
    plt.close(fig)
    return ENTROPY_CURVE_FILE


def training_command(argv=None) -> str:
    """The command that launched this process, as a copy-pasteable ``accelerate launch`` line."""
    argv = sys.argv if argv is None else argv
    return "accelerate launch " + shlex.join(argv)


def write_model_card(
    output_dir: str,
    args: argparse.Namespace,
    *,
    final_loss: Optional[float],
    num_processes: int,
    total_steps: int,
    trained_steps: Optional[int] = None,
    command: Optional[str] = None,
) -> str:
    """Renders ``README.md`` in ``output_dir`` (a saved pipeline) from the template; returns its path.

    `trained_steps` below `total_steps` marks a snapshot saved during the run (``--save_model_steps``).
    """
    from diffusers import DiffusionPipeline
    from huggingface_hub import ModelCard, ModelCardData

    pipeline = DiffusionPipeline.from_pretrained(output_dir)
    unet, scheduler = pipeline.unet, pipeline.scheduler
    joint = args.prediction_type == "joint"
    sample_shape = (unet.config.in_channels, args.resolution, args.resolution)
    own = default_card_scheduler(scheduler.config, joint)
    sample_scheduler = getattr(args, "card_scheduler", None) or own
    # a model whose output is neither one prediction nor a joint [ε, x0] pair (e.g. a learned variance) gets no grid
    drawable = joint or unet.config.out_channels == unet.config.in_channels
    grid = render_sample_grid(output_dir, args.num_card_samples if drawable else 0, args.card_inference_steps, args.seed, sample_scheduler)
    sampler = card_scheduler(scheduler.config, args.card_inference_steps, joint, sample_scheduler) if grid else None
    sampler_text = sampler[2] if sampler else ""
    # the usage snippet calls the pipeline with its own scheduler: its steps only when the grid was drawn with it
    own_sampler = joint and sampler is not None and sample_scheduler == own
    tags = ["diffusers", "unconditional-image-generation", "diffusers-infoflow", f"schedule-{args.beta_schedule}"]
    curve = render_entropy_curve(output_dir, scheduler.alphas_cumprod, sample_shape, f"{args.beta_schedule}, T = {args.num_train_timesteps}")
    dataset = args.dataset_name or args.train_data_dir
    card_data = ModelCardData(
        license="apache-2.0",
        library_name="diffusers",
        tags=tags + (["joint-prediction"] if joint else []),
        pipeline_tag="unconditional-image-generation",
    )
    name = args.hub_model_id or os.path.basename(os.path.normpath(output_dir))
    card = ModelCard.from_template(
        card_data,
        template_path=str(MODEL_CARD_TEMPLATE),
        model_name=name,
        repo_or_path=args.hub_model_id or output_dir,  # what from_pretrained takes: the Hub id, else the folder
        sample_model=args.hub_model_id or output_dir,  # `infoflow sample` takes folders, shipped names and Hub ids
        dataset=os.path.basename(str(dataset)) if os.path.exists(str(dataset)) else dataset,
        prediction_type="joint [ε, x0]" if joint else args.prediction_type,
        joint=joint,
        joint_gamma=getattr(args, "joint_gamma", None),
        joint_loss_norm=getattr(args, "joint_loss_norm", None),
        pipeline_class=type(pipeline).__name__,
        usage_steps=sampler[1] if own_sampler else None,
        usage_comment=sampler_text if own_sampler else (
            f"the saved {own} sampler; the grid below: --scheduler {sample_scheduler}" if joint and sampler else ""),
        sample_scheduler=sample_scheduler,
        sample_calls=args.card_inference_steps,
        sample_grid=grid,
        num_card_samples=args.num_card_samples,
        sample_caption=f"{args.num_card_samples} samples, {sampler_text}, seed {args.seed}.",
        beta_schedule=args.beta_schedule,
        num_train_timesteps=args.num_train_timesteps,
        schedule_params=args.schedule_params,
        sample_dim=int(torch.tensor(sample_shape).prod()),
        entropy_curve=curve,
        resolution=args.resolution,
        resize_mode=args.resize_mode,
        block_out_channels=list(args.block_out_channels),
        layers_per_block=args.layers_per_block,
        attention=args.attention,
        num_parameters=f"{sum(p.numel() for p in unet.parameters()):,}",
        train_batch_size=args.train_batch_size,
        num_processes=num_processes,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        max_train_steps=total_steps,
        trained_steps=total_steps if trained_steps is None else trained_steps,
        learning_rate=args.learning_rate,
        lr_scheduler=args.lr_scheduler,
        lr_warmup_steps=args.lr_warmup_steps,
        use_ema=args.use_ema,
        mixed_precision=args.mixed_precision,
        seed=args.seed,
        final_loss="n/a" if final_loss is None else f"{final_loss:.4f}",
        snr_gamma=getattr(args, "snr_gamma", None),
        recipe_notes=Path(args.card_notes).read_text().strip() if getattr(args, "card_notes", None) else "",
        training_command=command or training_command(),
    )
    path = os.path.join(output_dir, "README.md")
    card.save(path)
    return path


EVALUATION_BEGIN, EVALUATION_END = "<!-- infoflow-evaluate:begin -->", "<!-- infoflow-evaluate:end -->"
INFORMATION_BEGIN, INFORMATION_END = "<!-- infoflow-calibrate:begin -->", "<!-- infoflow-calibrate:end -->"


def write_card_evaluation(folder: str, report: dict, command: str) -> str:
    """Puts (or replaces) an "Evaluation" section with ``infoflow evaluate``'s scores in ``folder``'s model card."""
    rows = [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in report.items() if k != "images"]
    return _write_card_section(folder, EVALUATION_BEGIN, EVALUATION_END, [
        "## Evaluation", "",
        "Scores of samples from this pipeline by `infoflow evaluate` (diffusers-infoflow); read an FID against the "
        "feature network's floor (real train images against the same reference), given in the diffusers-infoflow README.", "",
        "| quantity | value |", "|---|---|", *rows, "", "Command:", "", "```bash", command, "```",
    ])


def write_card_information(folder: str, subfolder: str, num_images: int, command: str) -> str:
    """Puts (or replaces) a section on the calibrated information-placed sampler saved in ``folder/subfolder`` (by
    ``infoflow calibrate``) in ``folder``'s model card."""
    return _write_card_section(folder, INFORMATION_BEGIN, INFORMATION_END, [
        "## Few-call sampling with information-placed steps", "",
        f"`{subfolder}/` holds a `TrigAngleRKScheduler` whose rungs are placed by this model's mmse curve, measured on "
        f"{num_images} training images (diffusers-infoflow's `infoflow calibrate`):", "",
        "```python",
        "from diffusers_infoflow import TrigAngleRKScheduler",
        "",
        f'pipe.scheduler = TrigAngleRKScheduler.from_pretrained(model_path, subfolder="{subfolder}")',
        "images = pipe(num_inference_steps=5).images   # 5 model calls",
        "```", "",
        "or `infoflow sample --model MODEL --scheduler trig-information --model-calls 5`. Command:", "",
        "```bash", command, "```",
    ])


def _write_card_section(folder: str, begin: str, end: str, lines: list) -> str:
    """Replaces the text between the markers `begin` and `end` in ``folder/README.md``, or appends it."""
    path = os.path.join(folder, "README.md")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{folder!r} has no README.md model card to update.")
    section = "\n".join([begin, *lines, end])
    with open(path) as f:
        text = f.read()
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(path, "w") as f:
        f.write(text)
    return path


def card_for_repo(card_text: str, repo_id: str) -> str:
    """A model card whose usage lines load ``repo_id``: ``DiffusionPipeline.from_pretrained(...)`` and
    ``infoflow sample --model ...`` name the repository it is uploaded to, not the folder or name it was written for."""
    text = re.sub(r'(DiffusionPipeline\.from_pretrained\()"[^"]*"\)', lambda m: f'{m.group(1)}"{repo_id}")', card_text)
    return re.sub(r"(infoflow sample --model )[^\s`]+", lambda m: m.group(1) + repo_id, text)


def upload_ignore_patterns(folder: str) -> list:
    """:data:`UPLOAD_IGNORE_PATTERNS` plus the run's own tracker folder (``--logging_dir``, saved with its arguments)."""
    from .training.loop import TRAINING_ARGS_FILE

    patterns = list(UPLOAD_IGNORE_PATTERNS)
    saved = os.path.join(folder, TRAINING_ARGS_FILE)
    if os.path.isfile(saved):
        logging_dir = json.loads(Path(saved).read_text()).get("logging_dir")
        if logging_dir and not os.path.isabs(logging_dir):
            patterns += [f"{Path(logging_dir).as_posix().strip('/')}/**"]
    return patterns


def push_folder(folder: str, repo_id: str, *, private: bool = False, token: Optional[str] = None, commit_message: str = "Upload diffusion model") -> str:
    """Creates ``repo_id`` (if needed) and uploads ``folder`` in one commit, without checkpoints or tracker logs;
    the uploaded model card's usage lines name ``repo_id`` (:func:`card_for_repo`; the folder's card is unchanged).
    Returns the commit URL.

    The token is ``token``, else ``HF_TOKEN`` from the environment, else the local ``huggingface-cli login``.

    Raises:
        FileNotFoundError: ``folder`` holds no pipeline.
        ValueError: ``repo_id`` is not a valid Hub repository id, or the model card's metadata is invalid (read
            locally, then checked by the Hub's validate-yaml; both before the repository is created).
        ConnectionError: the Hub could not be reached or refused the upload (one line; the folder is untouched).
    """
    from huggingface_hub import CommitOperationAdd, HfApi, ModelCard
    from huggingface_hub.errors import HFValidationError, HTTPError
    from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects, validate_repo_id

    if not os.path.isfile(os.path.join(folder, "model_index.json")):
        raise FileNotFoundError(f"{folder!r} has no model_index.json: train into it first (scripts/train.py).")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ValueError(f"{repo_id!r} is not a Hub repository id (OWNER/NAME): {err}") from None
    root = Path(folder)
    files = list(filter_repo_objects(sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()),
                                ignore_patterns=upload_ignore_patterns(folder) + DEFAULT_IGNORE_PATTERNS))
    api = HfApi(token=token or os.environ.get("HF_TOKEN"))
    try:
        card = ModelCard.load(root / "README.md") if "README.md" in files else None
        if card is not None:  # what upload_folder checks; before create_repo, so a bad card leaves no empty repo
            card.validate(repo_type="model")
        repo_url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        operations = []
        for name in files:
            content = str(root / name)
            if name == "README.md":  # the card names the full id create_repo made (a bare name gains the user)
                content = card_for_repo(card.content, repo_url.repo_id).encode("utf8")
            operations.append(CommitOperationAdd(path_in_repo=name, path_or_fileobj=content))
        commit = api.create_commit(repo_id=repo_url.repo_id, operations=operations, commit_message=commit_message,
                                   repo_type="model")
    except HTTPError as err:  # no network, no or a bad token, no rights: the model stays saved in `folder`
        raise ConnectionError(f"could not upload {folder} to {repo_id} ({type(err).__name__}: {err}); it stays saved "
                              f"there: run scripts/push_to_hub.py {folder} {repo_id} later.") from None
    return commit.commit_url
