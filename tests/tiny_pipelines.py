"""Tiny, randomly initialised diffusers pipelines built entirely offline, for scheduler tests.

Nothing here touches the Hugging Face Hub: the models are built from tiny configs (the same shapes diffusers' own
fast pipeline tests use, shrunk further where that keeps the pipeline valid) and the tokenizers from a small vocabulary
written to a temporary directory at call time. Weights are deterministic (a fixed seed per model, drawn under
``torch.random.fork_rng`` so the caller's RNG state is left untouched), so two calls build identical pipelines.

The pipelines are only meant to exercise the scheduler plumbing of the real pipeline classes
(``retrieve_timesteps``, ``set_timesteps`` arguments, ``step`` / ``add_noise`` / ``scale_noise``, img2img's
``set_begin_index``); their images are noise.

Sizes: every builder here works at ``height = width = 32`` (also 16, 64, ... for SD; multiples of 4 for SD3 and FLUX).

``scheduler_config(name)`` / ``native_scheduler(name)`` read the published scheduler configs in
``tests/data/scheduler_configs/<name>.json`` (see the README there).
"""

import json
import os
import string
import tempfile
from pathlib import Path
from typing import Any, Dict

import diffusers
import torch
from diffusers import (
    AutoencoderKL,
    FluxImg2ImgPipeline,
    FluxPipeline,
    FluxTransformer2DModel,
    SD3Transformer2DModel,
    StableDiffusion3Img2ImgPipeline,
    StableDiffusion3Pipeline,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    T5Config,
    T5EncoderModel,
    T5TokenizerFast,
)


SCHEDULER_CONFIG_DIR = Path(__file__).resolve().parent / "data" / "scheduler_configs"

#: CLIP's context length; the SD / SD3 / FLUX pipelines pad CLIP prompts to ``tokenizer.model_max_length``.
CLIP_MAX_LENGTH = 77
#: Upper bound for the T5 prompt length (SD3 pads to ``max_sequence_length`` = 256 by default, FLUX to 512).
T5_MAX_LENGTH = 512

_SEED = 0


# --------------------------------------------------------------------------------------------------- scheduler configs
def scheduler_config(name: str) -> Dict[str, Any]:
    """The published scheduler config ``tests/data/scheduler_configs/<name>.json`` (``.json`` optional in ``name``)."""
    path = SCHEDULER_CONFIG_DIR / (name if name.endswith(".json") else f"{name}.json")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def native_scheduler(name: str, **overrides):
    """The checkpoint's own scheduler class (``_class_name``) built from its published config, plus ``overrides``."""
    config = scheduler_config(name)
    return getattr(diffusers, config["_class_name"]).from_config(config, **overrides)


# ---------------------------------------------------------------------------------------------------------- tokenizers
def _bytes_to_unicode():
    """GPT-2 / CLIP's byte -> printable unicode table (the 256 base symbols of a byte-level BPE)."""
    printable = list(range(ord("!"), ord("~") + 1))
    printable += list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(code) for code in codes]


#: A handful of merges so the BPE actually merges something ("the", "in", "an", "er", ...).
_CLIP_MERGES = [("t", "h"), ("th", "e</w>"), ("i", "n"), ("a", "n"), ("e", "r"), ("o", "n"), ("r", "e"), ("a", "t")]


def tiny_clip_tokenizer() -> CLIPTokenizer:
    """A byte-level BPE ``CLIPTokenizer`` (every byte is a token, so no text is ever unknown), 77-token context.

    Written as ``vocab.json`` + ``merges.txt`` to a temporary directory and loaded from there, like a Hub checkpoint's
    ``tokenizer/`` folder. Ids: 0..511 the byte symbols (bare and ``</w>``), then the merges, then
    ``<|startoftext|>`` and ``<|endoftext|>`` last (as in CLIP, where they are 49406 / 49407); pad = ``<|endoftext|>``.
    """
    symbols = _bytes_to_unicode()
    vocab: Dict[str, int] = {}
    for symbol in symbols:
        vocab[symbol] = len(vocab)
    for symbol in symbols:
        vocab[symbol + "</w>"] = len(vocab)
    for left, right in _CLIP_MERGES:
        vocab.setdefault(left + right, len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    merges = "#version: 0.2\n" + "".join(f"{left} {right}\n" for left, right in _CLIP_MERGES)
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as handle:
            json.dump(vocab, handle, ensure_ascii=False)
        with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as handle:
            handle.write(merges)
        return CLIPTokenizer.from_pretrained(folder, model_max_length=CLIP_MAX_LENGTH)


def tiny_t5_tokenizer() -> T5TokenizerFast:
    """A character-level Unigram ``T5TokenizerFast`` (``<pad>`` = 0, ``</s>`` = 1, ``<unk>`` = 2, no ``<extra_id_*>``).

    Built with ``tokenizers`` (SentencePiece-style ``▁`` metaspace, ``</s>`` appended), saved as ``tokenizer.json``
    in a temporary directory and loaded from there. ASCII letters, digits and punctuation are pieces; anything else
    is ``<unk>``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    for char in string.ascii_lowercase + string.ascii_uppercase + string.digits + string.punctuation:
        pieces.append(("▁" + char, -3.0))
        pieces.append((char, -4.0))
    backend = Tokenizer(models.Unigram(pieces, unk_id=2))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    backend.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    with tempfile.TemporaryDirectory() as folder:
        backend.save(os.path.join(folder, "tokenizer.json"))
        return T5TokenizerFast.from_pretrained(
            folder,
            extra_ids=0,
            eos_token="</s>",
            unk_token="<unk>",
            pad_token="<pad>",
            model_max_length=T5_MAX_LENGTH,
        )


# ------------------------------------------------------------------------------------------------------------- models
def _seeded(build, seed: int = _SEED):
    """``build()`` under ``torch.manual_seed(seed)`` without disturbing the caller's CPU RNG; returned in eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = build()
    return module.eval()


def _clip_config(tokenizer: CLIPTokenizer, hidden_size: int, **kwargs) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        max_position_embeddings=CLIP_MAX_LENGTH,
        hidden_size=hidden_size,
        num_attention_heads=2,
        num_hidden_layers=2,  # SD3 reads the penultimate hidden state
        layer_norm_eps=1e-05,
        hidden_act="gelu",
        **kwargs,
    )


def _t5_encoder(tokenizer: T5TokenizerFast, d_model: int = 32) -> T5EncoderModel:
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=d_model,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        dropout_rate=0.0,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    return _seeded(lambda: T5EncoderModel(config))


def _tiny_vae(latent_channels: int, **kwargs) -> AutoencoderKL:
    """Two blocks (one 2x downsampling: ``vae_scale_factor`` = 2), 4/8 channels."""
    return _seeded(
        lambda: AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
            block_out_channels=(4, 8),
            layers_per_block=1,
            latent_channels=latent_channels,
            norm_num_groups=2,
            sample_size=32,
            **kwargs,
        )
    )


# ---------------------------------------------------------------------------------------------------- Stable Diffusion
def tiny_stable_diffusion_components(scheduler) -> Dict[str, Any]:
    """SD 1.x-shaped components: UNet (4, 8) with cross-attention 8, VAE (4, 8) with 4 latents, 2-layer CLIP."""
    cross_attention_dim = 8
    tokenizer = tiny_clip_tokenizer()
    unet = _seeded(
        lambda: UNet2DConditionModel(
            block_out_channels=(4, 8),
            layers_per_block=1,
            sample_size=16,  # default height/width = 16 * vae_scale_factor = 32
            in_channels=4,
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=cross_attention_dim,
            attention_head_dim=2,
            norm_num_groups=2,
        )
    )
    vae = _tiny_vae(latent_channels=4)
    text_encoder = _seeded(
        lambda: CLIPTextModel(_clip_config(tokenizer, hidden_size=cross_attention_dim, intermediate_size=16))
    )
    return {
        "unet": unet,
        "scheduler": scheduler,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "safety_checker": None,
        "feature_extractor": None,
        "image_encoder": None,
    }


def _finish(pipe):
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_stable_diffusion_pipeline(scheduler) -> StableDiffusionPipeline:
    """A tiny :class:`~diffusers.StableDiffusionPipeline` (no safety checker) around ``scheduler``."""
    components = tiny_stable_diffusion_components(scheduler)
    return _finish(StableDiffusionPipeline(**components, requires_safety_checker=False))


def tiny_sd_img2img_pipeline(scheduler) -> StableDiffusionImg2ImgPipeline:
    """The same tiny components in a :class:`~diffusers.StableDiffusionImg2ImgPipeline`."""
    components = tiny_stable_diffusion_pipeline(scheduler).components
    return _finish(StableDiffusionImg2ImgPipeline(**components, requires_safety_checker=False))


# -------------------------------------------------------------------------------------------------------------- SD3
def tiny_sd3_components(scheduler) -> Dict[str, Any]:
    """SD3-shaped components: MMDiT (1 layer, 4 heads x 8, patch 2), two CLIPs with projection, T5, VAE (4, 8).

    Dimensions tie together as in SD3: pooled = concat of the two CLIP projections (2 x 32 = 64 =
    ``pooled_projection_dim``); the CLIP hidden states (2 x 32) are padded/cut to T5's width
    (32 = ``joint_attention_dim``).
    """
    clip_tokenizer = tiny_clip_tokenizer()
    t5_tokenizer = tiny_t5_tokenizer()
    clip_config = _clip_config(clip_tokenizer, hidden_size=32, intermediate_size=37, projection_dim=32)
    return {
        "transformer": _seeded(
            lambda: SD3Transformer2DModel(
                sample_size=16,
                patch_size=2,
                in_channels=4,
                num_layers=1,
                attention_head_dim=8,
                num_attention_heads=4,
                caption_projection_dim=32,
                joint_attention_dim=32,
                pooled_projection_dim=64,
                out_channels=4,
            )
        ),
        "scheduler": scheduler,
        "vae": _tiny_vae(latent_channels=4, use_quant_conv=False, use_post_quant_conv=False,
                         shift_factor=0.0609, scaling_factor=1.5035),
        "text_encoder": _seeded(lambda: CLIPTextModelWithProjection(clip_config)),
        "text_encoder_2": _seeded(lambda: CLIPTextModelWithProjection(clip_config), seed=1),
        "text_encoder_3": _t5_encoder(t5_tokenizer, d_model=32),
        "tokenizer": clip_tokenizer,
        "tokenizer_2": tiny_clip_tokenizer(),
        "tokenizer_3": t5_tokenizer,
        "image_encoder": None,
        "feature_extractor": None,
    }


def tiny_sd3_pipeline(scheduler) -> StableDiffusion3Pipeline:
    """A tiny :class:`~diffusers.StableDiffusion3Pipeline` around ``scheduler``."""
    return _finish(StableDiffusion3Pipeline(**tiny_sd3_components(scheduler)))


def tiny_sd3_img2img_pipeline(scheduler) -> StableDiffusion3Img2ImgPipeline:
    """The same tiny components in a :class:`~diffusers.StableDiffusion3Img2ImgPipeline`."""
    return _finish(StableDiffusion3Img2ImgPipeline(**tiny_sd3_components(scheduler)))


# ------------------------------------------------------------------------------------------------------------- FLUX
def tiny_flux_components(scheduler, guidance_embeds: bool = False) -> Dict[str, Any]:
    """FLUX-shaped components: 1 double + 1 single block (2 heads x 16, RoPE axes 4/4/8), CLIP, T5, VAE (4, 8).

    The VAE has 4 latent channels, packed 2x2 into the transformer's 16 input channels (FLUX.1: 16 -> 64).
    ``guidance_embeds=True`` mirrors FLUX.1-dev (guidance-distilled, ``guidance_scale`` is fed to the transformer);
    ``False`` mirrors FLUX.1-schnell.
    """
    clip_tokenizer = tiny_clip_tokenizer()
    t5_tokenizer = tiny_t5_tokenizer()
    return {
        "transformer": _seeded(
            lambda: FluxTransformer2DModel(
                patch_size=1,
                in_channels=16,
                num_layers=1,
                num_single_layers=1,
                attention_head_dim=16,
                num_attention_heads=2,
                joint_attention_dim=32,
                pooled_projection_dim=32,
                guidance_embeds=guidance_embeds,
                axes_dims_rope=(4, 4, 8),
            )
        ),
        "scheduler": scheduler,
        "vae": _tiny_vae(latent_channels=4, use_quant_conv=False, use_post_quant_conv=False,
                         shift_factor=0.0609, scaling_factor=1.5035),
        "text_encoder": _seeded(
            lambda: CLIPTextModel(_clip_config(clip_tokenizer, hidden_size=32, intermediate_size=37))
        ),
        "text_encoder_2": _t5_encoder(t5_tokenizer, d_model=32),
        "tokenizer": clip_tokenizer,
        "tokenizer_2": t5_tokenizer,
        "image_encoder": None,
        "feature_extractor": None,
    }


def tiny_flux_pipeline(scheduler, guidance_embeds: bool = False) -> FluxPipeline:
    """A tiny :class:`~diffusers.FluxPipeline` around ``scheduler`` (see :func:`tiny_flux_components`)."""
    return _finish(FluxPipeline(**tiny_flux_components(scheduler, guidance_embeds)))


def tiny_flux_img2img_pipeline(scheduler, guidance_embeds: bool = False) -> FluxImg2ImgPipeline:
    """The same tiny components in a :class:`~diffusers.FluxImg2ImgPipeline`."""
    return _finish(FluxImg2ImgPipeline(**tiny_flux_components(scheduler, guidance_embeds)))


# ------------------------------------------------------------------------------------------------------------- inputs
def tiny_init_image(size: int = 32, seed: int = 0):
    """A deterministic ``size`` x ``size`` RGB PIL image (smooth gradients plus noise) for img2img."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.0, 1.0, size)
    base = np.stack([np.add.outer(ramp, ramp) / 2, np.outer(ramp, 1 - ramp), np.add.outer(1 - ramp, ramp) / 2], -1)
    pixels = np.clip(base + 0.1 * rng.standard_normal(base.shape), 0.0, 1.0)
    return Image.fromarray((pixels * 255).round().astype(np.uint8))


def cpu_generator(seed: int = 0) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(seed)


def tiny_mnist_ddpm_pipeline(folder, scheduler=None, seed: int = 0) -> None:
    """Saves a DDPMPipeline with an untrained 28×28 one-channel UNet (8/16 channels) to ``folder``; ``scheduler``
    defaults to ``DDPMScheduler(num_train_timesteps=100)``."""
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(seed)
    unet = UNet2DModel(sample_size=28, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(8, 16),
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4)
    DDPMPipeline(unet=unet, scheduler=scheduler or DDPMScheduler(num_train_timesteps=100)).save_pretrained(folder)


__all__ = [
    "CLIP_MAX_LENGTH",
    "SCHEDULER_CONFIG_DIR",
    "T5_MAX_LENGTH",
    "cpu_generator",
    "native_scheduler",
    "scheduler_config",
    "tiny_clip_tokenizer",
    "tiny_flux_components",
    "tiny_flux_img2img_pipeline",
    "tiny_flux_pipeline",
    "tiny_init_image",
    "tiny_mnist_ddpm_pipeline",
    "tiny_sd3_components",
    "tiny_sd3_img2img_pipeline",
    "tiny_sd3_pipeline",
    "tiny_sd_img2img_pipeline",
    "tiny_stable_diffusion_components",
    "tiny_stable_diffusion_pipeline",
    "tiny_t5_tokenizer",
]
