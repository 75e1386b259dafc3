"""The tiny offline pipelines of ``tests/tiny_pipelines.py`` run with each checkpoint's own (native) scheduler.

These pin down the harness itself: every published config in ``tests/data/scheduler_configs`` loads into its class,
the SD / SD3 / FLUX txt2img and img2img pipelines run end to end on CPU with the native scheduler, and the exact
arguments each pipeline hands to ``scheduler.set_timesteps`` (through ``retrieve_timesteps``) are recorded, since a
scheduler plugged into these pipelines has to accept them.
"""

import functools
import json

import diffusers
import numpy as np
import pytest
import torch

from .tiny_pipelines import (
    SCHEDULER_CONFIG_DIR,
    cpu_generator,
    native_scheduler,
    scheduler_config,
    tiny_flux_img2img_pipeline,
    tiny_flux_pipeline,
    tiny_init_image,
    tiny_sd3_img2img_pipeline,
    tiny_sd3_pipeline,
    tiny_sd_img2img_pipeline,
    tiny_stable_diffusion_pipeline,
)


pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 32
PROMPT = "a photo of a squirrel eating a burger"
CONFIG_NAMES = sorted(path.stem for path in SCHEDULER_CONFIG_DIR.glob("*.json"))


def _check_images(images, size=SIZE):
    assert isinstance(images, np.ndarray)
    assert images.shape == (1, size, size, 3)
    assert np.isfinite(images).all()
    assert images.std() > 0  # not a constant image


def _record_set_timesteps(scheduler):
    """Wrap ``scheduler.set_timesteps`` on the instance; returns the list its calls are appended to.

    ``functools.wraps`` keeps the signature visible: ``retrieve_timesteps`` inspects ``set_timesteps``' parameters and
    refuses ``sigmas`` / ``timesteps`` unless they are named there (``**kwargs`` is not enough).
    """
    calls = []
    original = scheduler.set_timesteps

    @functools.wraps(original)
    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return original(*args, **kwargs)

    scheduler.set_timesteps = spy
    return calls


# ----------------------------------------------------------------------------------------------------- the configs
def test_config_files_present():
    expected = {
        "ddpm-cifar10-32", "ddpm-celebahq-256", "sd15", "sd21-v", "sdxl-base", "playground-v2.5",
        "sd3-medium", "flux1-dev", "flux1-schnell", "zero-snr-v-trailing", "consistency-model",
    }  # fmt: skip
    assert expected <= set(CONFIG_NAMES)


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_config_loads_into_its_class(name):
    with open(SCHEDULER_CONFIG_DIR / f"{name}.json", encoding="utf-8") as handle:
        config = json.load(handle)
    assert {"_class_name", "_diffusers_version"} <= set(config)
    scheduler = getattr(diffusers, config["_class_name"]).from_config(config)
    assert type(scheduler).__name__ == config["_class_name"]
    for key, value in config.items():
        if not key.startswith("_") and key in scheduler.config:
            assert scheduler.config[key] == value, key


def test_config_values_that_matter():
    assert scheduler_config("ddpm-cifar10-32")["variance_type"] == "fixed_large"
    assert scheduler_config("ddpm-celebahq-256")["variance_type"] == "fixed_small"
    assert scheduler_config("sd21-v")["prediction_type"] == "v_prediction"
    zero_snr = scheduler_config("zero-snr-v-trailing")
    assert (zero_snr["rescale_betas_zero_snr"], zero_snr["timestep_spacing"]) == (True, "trailing")
    assert native_scheduler("zero-snr-v-trailing").alphas_cumprod[-1] == 0.0
    assert scheduler_config("sd3-medium")["shift"] == 3.0
    assert scheduler_config("flux1-dev")["use_dynamic_shifting"] is True
    assert scheduler_config("flux1-schnell")["use_dynamic_shifting"] is False


# --------------------------------------------------------------------------------------------------- Stable Diffusion
def test_sd_txt2img_native_pndm():
    scheduler = native_scheduler("sd15")
    assert isinstance(scheduler, diffusers.PNDMScheduler)
    pipe = tiny_stable_diffusion_pipeline(scheduler)
    calls = _record_set_timesteps(pipe.scheduler)
    out = pipe(PROMPT, num_inference_steps=2, height=SIZE, width=SIZE, output_type="np", generator=cpu_generator())
    _check_images(out.images)
    # StableDiffusionPipeline: retrieve_timesteps(scheduler, num_inference_steps, device, timesteps=None, sigmas=None)
    # -> scheduler.set_timesteps(num_inference_steps, device=device)
    assert calls == [((2,), {"device": torch.device("cpu")})]


def test_sd_txt2img_is_deterministic():
    def run():
        pipe = tiny_stable_diffusion_pipeline(native_scheduler("sd15"))
        return pipe(PROMPT, num_inference_steps=2, height=SIZE, width=SIZE, output_type="np",
                    generator=cpu_generator(3)).images  # fmt: skip

    np.testing.assert_array_equal(run(), run())


def test_sd_img2img_native_pndm():
    pipe = tiny_sd_img2img_pipeline(native_scheduler("sd15"))
    calls = _record_set_timesteps(pipe.scheduler)
    out = pipe(PROMPT, image=tiny_init_image(SIZE), strength=0.5, num_inference_steps=2, output_type="np",
               generator=cpu_generator())  # fmt: skip
    _check_images(out.images)
    assert calls == [((2,), {"device": torch.device("cpu")})]


def test_sd_txt2img_v_prediction_ddim():
    """The same tiny UNet read as a v-prediction model with SD 2.1's and the zero-SNR trailing DDIM configs."""
    for name in ("sd21-v", "zero-snr-v-trailing"):
        pipe = tiny_stable_diffusion_pipeline(native_scheduler(name))
        out = pipe(PROMPT, num_inference_steps=2, height=SIZE, width=SIZE, output_type="np", generator=cpu_generator())
        _check_images(out.images)


# -------------------------------------------------------------------------------------------------------------- SD3
def test_sd3_txt2img_native_flow_match():
    pipe = tiny_sd3_pipeline(native_scheduler("sd3-medium"))
    calls = _record_set_timesteps(pipe.scheduler)
    out = pipe(PROMPT, num_inference_steps=2, height=SIZE, width=SIZE, output_type="np", generator=cpu_generator())
    _check_images(out.images)
    # StableDiffusion3Pipeline: retrieve_timesteps(scheduler, num_inference_steps, device, sigmas=None, **kw) with
    # kw = {"mu": ...} only when the config has use_dynamic_shifting (or mu is passed) -> not for SD3-medium.
    assert calls == [((2,), {"device": torch.device("cpu")})]


def test_sd3_img2img_native_flow_match():
    pipe = tiny_sd3_img2img_pipeline(native_scheduler("sd3-medium"))
    calls = _record_set_timesteps(pipe.scheduler)
    out = pipe(PROMPT, image=tiny_init_image(SIZE), strength=0.5, num_inference_steps=2, output_type="np",
               generator=cpu_generator())  # fmt: skip
    _check_images(out.images)
    assert calls == [((2,), {"device": torch.device("cpu")})]
    assert len(pipe.scheduler.timesteps) == 2  # the full schedule; strength 0.5 then starts at index 1


# ------------------------------------------------------------------------------------------------------------- FLUX
def test_flux_dev_txt2img_native_dynamic_shifting():
    pipe = tiny_flux_pipeline(native_scheduler("flux1-dev"), guidance_embeds=True)
    calls = _record_set_timesteps(pipe.scheduler)
    out = pipe(PROMPT, num_inference_steps=2, height=SIZE, width=SIZE, guidance_scale=3.5, output_type="np",
               generator=cpu_generator())  # fmt: skip
    _check_images(out.images)
    # FluxPipeline: retrieve_timesteps(scheduler, num_inference_steps, device, sigmas=sigmas, mu=mu), with
    # sigmas = np.linspace(1, 1/N, N) always -> set_timesteps(sigmas=..., device=..., mu=...): no num_inference_steps.
    [(args, kwargs)] = calls
    assert args == ()
    assert set(kwargs) == {"sigmas", "device", "mu"}
    np.testing.assert_allclose(kwargs["sigmas"], [1.0, 0.5])
    assert isinstance(kwargs["mu"], float)


def test_flux_schnell_txt2img_native():
    pipe = tiny_flux_pipeline(native_scheduler("flux1-schnell"))
    calls = _record_set_timesteps(pipe.scheduler)
    out = pipe(PROMPT, num_inference_steps=2, height=SIZE, width=SIZE, guidance_scale=0.0, output_type="np",
               generator=cpu_generator())  # fmt: skip
    _check_images(out.images)
    # mu is passed even though schnell's config has use_dynamic_shifting = false (the scheduler ignores it).
    [(args, kwargs)] = calls
    assert args == () and set(kwargs) == {"sigmas", "device", "mu"}


@pytest.mark.parametrize("name", ["flux1-dev", "flux1-schnell"])
def test_flux_img2img_native(name):
    pipe = tiny_flux_img2img_pipeline(native_scheduler(name), guidance_embeds=name == "flux1-dev")
    calls = _record_set_timesteps(pipe.scheduler)
    out = pipe(PROMPT, image=tiny_init_image(SIZE), strength=0.5, num_inference_steps=2, height=SIZE, width=SIZE,
               output_type="np", generator=cpu_generator())  # fmt: skip
    _check_images(out.images)
    [(args, kwargs)] = calls
    assert args == () and set(kwargs) == {"sigmas", "device", "mu"}
