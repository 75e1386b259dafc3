"""I-MMSE information curves and NLL (seed 001 Theorem 6) against Gaussian closed forms; the Theorem 6 question."""

import math

import pytest
import torch

from diffusers_infoflow import GaussianDenoiser
from diffusers_infoflow.metrics import (
    denoise_fn_from_diffusers,
    gaussian_information,
    gaussian_mmse,
    information_curve,
    nll_bits_per_dim,
)
from diffusers_infoflow.schedules import DiscreteSchedule


VARIANCE = torch.tensor([0.05, 0.2, 0.5, 1.0, 1.7, 3.0], dtype=torch.float64)
LOGSNRS = [-6.0, -2.0, 0.0, 2.0, 6.0]


def _gaussian_data(n, seed=0):
    return torch.randn(n, VARIANCE.numel(), generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * VARIANCE.sqrt()


def _posterior_mean(z, logsnr):
    alpha2 = torch.sigmoid(logsnr).unsqueeze(1)
    return alpha2.sqrt() * VARIANCE / (alpha2 * VARIANCE + torch.sigmoid(-logsnr).unsqueeze(1)) * z


@pytest.mark.parametrize("gaussian_baseline", [True, False])
def test_information_curve_matches_gaussian_closed_form(gaussian_baseline):
    result = information_curve(_posterior_mean, _gaussian_data(3000), LOGSNRS, gaussian_baseline=gaussian_baseline)
    exact = gaussian_information(VARIANCE, torch.tensor(LOGSNRS, dtype=torch.float64))
    torch.testing.assert_close(result["information"], exact, rtol=0.03, atol=2e-3)
    # the Monte Carlo mmse on the grid follows Σ v/(1 + e^λ v)
    torch.testing.assert_close(result["grid_mmse"], gaussian_mmse(VARIANCE, result["grid_logsnr"]), rtol=0.1, atol=1e-3)


def test_theorem6_extra_term_does_not_belong():
    """dI/dλ = ½ e^λ mmse holds; adding −D α̃'/α̃ = −(D/2)·sigmoid(−λ) (seed 001's OCR) breaks it by exactly that."""
    lam = torch.linspace(-8, 8, 33, dtype=torch.float64)
    h = 1e-5
    derivative = (gaussian_information(VARIANCE, lam + h) - gaussian_information(VARIANCE, lam - h)) / (2 * h)
    i_mmse = 0.5 * lam.exp() * gaussian_mmse(VARIANCE, lam)
    torch.testing.assert_close(derivative, i_mmse, rtol=1e-7, atol=1e-9)
    dim = VARIANCE.numel()
    with_extra_term = i_mmse - dim * 0.5 * torch.sigmoid(-lam)  # α̃ = sqrt(sigmoid(λ)) ⇒ α̃'/α̃ = ½ sigmoid(−λ)
    assert torch.all((derivative - with_extra_term - dim * 0.5 * torch.sigmoid(-lam)).abs() < 1e-7)
    assert (derivative - with_extra_term).min() > 0.5 * dim * torch.sigmoid(torch.tensor(-8.0)) - 1e-9


def test_continuous_nll_matches_gaussian_density():
    data = _gaussian_data(2000, seed=1)
    bpd = nll_bits_per_dim(_posterior_mean, data, step=0.25)
    exact = 0.5 * (torch.log(2 * math.pi * VARIANCE) + data**2 / VARIANCE).sum(1) / (VARIANCE.numel() * math.log(2))
    assert bpd.mean().item() == pytest.approx(exact.mean().item(), abs=0.03)


def test_discrete_nll_of_two_points_is_one_bit():
    # x ∈ {−1, +1}^D uniformly: −log2 P(x) = D bits, i.e. 1 bit per dimension.
    dim = 4
    data = torch.randint(0, 2, (500, dim), generator=torch.Generator().manual_seed(2)).double() * 2 - 1

    def posterior_mean(z, logsnr):
        alpha, sigma2 = torch.sigmoid(logsnr).sqrt().unsqueeze(1), torch.sigmoid(-logsnr).unsqueeze(1)
        return torch.tanh(alpha * z / sigma2)

    bpd = nll_bits_per_dim(posterior_mean, data, discrete=True, logsnr_min=-12, logsnr_max=12, step=0.1)
    assert bpd.mean().item() == pytest.approx(1.0, abs=0.05)


def test_diffusers_adapter_with_exact_gaussian_denoiser():
    """The adapter (λ → fractional timestep, ε-prediction → x0) reproduces the closed-form information curve."""
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler(num_train_timesteps=200, beta_schedule="linear")
    variance = torch.full((1, 2, 2), 0.5, dtype=torch.float64)
    variance[0, 0, 0] = 2.0
    model = GaussianDenoiser(torch.zeros(1, 2, 2), variance, DiscreteSchedule(scheduler.alphas_cumprod), prediction_type="epsilon")
    denoise = denoise_fn_from_diffusers(model, scheduler.config)
    lo, hi = denoise.logsnr_range
    data = torch.randn(2000, 1, 2, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * variance.sqrt()
    targets = [lo + 1.0, 0.0, hi - 0.5]
    result = information_curve(denoise, data, targets, logsnr_min=lo, step=0.25)
    torch.testing.assert_close(result["information"], gaussian_information(variance, torch.tensor(targets, dtype=torch.float64)), rtol=0.03, atol=5e-3)
    with pytest.raises(ValueError, match="outside"):
        denoise(data[:2], torch.full((2,), hi + 5.0, dtype=torch.float64))


def test_information_curve_bad_inputs():
    data = _gaussian_data(10)
    with pytest.raises(ValueError, match="logsnr_min"):
        information_curve(_posterior_mean, data, [-20.0], logsnr_min=-15.0)
    with pytest.raises(ValueError, match="NaN"):
        information_curve(_posterior_mean, torch.full_like(data, float("nan")), [0.0])
    with pytest.raises(ValueError, match="step"):
        information_curve(_posterior_mean, data, [0.0], step=0.0)
    with pytest.raises(ValueError, match="at least 2 samples; got 1"):  # its variance would be NaN
        information_curve(_posterior_mean, data[:1], [0.0])
    assert torch.isfinite(information_curve(_posterior_mean, data[:1], [0.0], gaussian_baseline=False)["information"]).all()


def test_a_trained_models_table_bounds_the_default_quadrature():
    """With a diffusers denoiser the default λ range is its table's (λ outside it would be refused), so
    `information_curve(denoise_fn_from_diffusers(unet, scheduler), data, ...)` runs with no range given."""
    from diffusers import DDPMScheduler, UNet2DModel

    from diffusers_infoflow.metrics import denoise_fn_from_diffusers, information_curve, nll_bits_per_dim

    unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(8, 8),
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4)
    denoise = denoise_fn_from_diffusers(unet.eval(), DDPMScheduler(num_train_timesteps=100))
    data = torch.rand(4, 1, 8, 8) * 2 - 1
    lo, hi = denoise.logsnr_range
    curve = information_curve(denoise, data, [0.0], step=1.0, batch_size=4)
    assert float(curve["grid_logsnr"][0]) == pytest.approx(lo)
    assert nll_bits_per_dim(denoise, data, step=2.0, batch_size=4).shape == (4,)
    with pytest.raises(ValueError, match="outside"):
        information_curve(denoise, data, [0.0], logsnr_min=lo - 5, step=1.0, batch_size=4)
