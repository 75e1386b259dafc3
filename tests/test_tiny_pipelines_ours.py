"""Our three schedulers swapped into tiny Stable Diffusion, SD3 and FLUX pipelines built locally (no Hub), as a
user does: ``pipe.scheduler = X.from_config(pipe.scheduler.config)``; txt2img and img2img run and stay finite."""

import numpy as np
import pytest

from diffusers_infoflow import EntropyHybridScheduler, S2NGeneralizedScheduler, TrigAngleRKScheduler

from .tiny_pipelines import (
    cpu_generator,
    native_scheduler,
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
OURS = [EntropyHybridScheduler, S2NGeneralizedScheduler, TrigAngleRKScheduler]


def _swap(pipe, cls):
    pipe.scheduler = cls.from_config(pipe.scheduler.config)
    return pipe


def _check(images):
    assert images.shape == (1, SIZE, SIZE, 3)
    assert np.isfinite(images).all() and images.std() > 0


@pytest.mark.parametrize("name", ["sd15", "sd21-v", "zero-snr-v-trailing"])
@pytest.mark.parametrize("cls", OURS)
def test_stable_diffusion_txt2img_and_img2img(cls, name):
    pipe = _swap(tiny_stable_diffusion_pipeline(native_scheduler(name)), cls)
    _check(pipe(PROMPT, num_inference_steps=3, height=SIZE, width=SIZE, output_type="np", generator=cpu_generator()).images)
    pipe = _swap(tiny_sd_img2img_pipeline(native_scheduler(name)), cls)
    out = pipe(PROMPT, image=tiny_init_image(SIZE), strength=0.6, num_inference_steps=3, output_type="np", generator=cpu_generator())
    _check(out.images)


@pytest.mark.parametrize("cls", OURS)
def test_sd3_txt2img_and_img2img(cls):
    pipe = _swap(tiny_sd3_pipeline(native_scheduler("sd3-medium")), cls)
    assert pipe.scheduler.config.noise_family == "flow"
    _check(pipe(PROMPT, num_inference_steps=3, height=SIZE, width=SIZE, output_type="np", generator=cpu_generator()).images)
    pipe = _swap(tiny_sd3_img2img_pipeline(native_scheduler("sd3-medium")), cls)
    out = pipe(PROMPT, image=tiny_init_image(SIZE), strength=0.6, num_inference_steps=3, output_type="np", generator=cpu_generator())
    _check(out.images)


@pytest.mark.parametrize("name", ["flux1-dev", "flux1-schnell"])
@pytest.mark.parametrize("cls", OURS)
def test_flux_txt2img_and_img2img(cls, name):
    dev = name == "flux1-dev"
    pipe = _swap(tiny_flux_pipeline(native_scheduler(name), guidance_embeds=dev), cls)
    out = pipe(PROMPT, num_inference_steps=3, height=SIZE, width=SIZE, guidance_scale=3.5 if dev else 0.0, output_type="np",
               generator=cpu_generator())  # fmt: skip
    _check(out.images)
    pipe = _swap(tiny_flux_img2img_pipeline(native_scheduler(name), guidance_embeds=dev), cls)
    call = {"prompt": PROMPT, "image": tiny_init_image(SIZE), "strength": 0.6, "num_inference_steps": 3, "height": SIZE, "width": SIZE,
                "output_type": "np", "generator": cpu_generator()}  # fmt: skip
    if cls is TrigAngleRKScheduler:
        # FluxImg2ImgPipeline counts len(timesteps) as steps once it passes sigmas: multi-stage RK4 cannot start mid-way
        with pytest.raises(ValueError, match="one-call-per-step solver"):
            pipe(**call)
        pipe.scheduler = TrigAngleRKScheduler.from_config(pipe.scheduler.config, solver="multistep")
    _check(pipe(**call).images)
