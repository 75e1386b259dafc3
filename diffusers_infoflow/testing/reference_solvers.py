"""Small functional reference solvers, in the compact style of k-diffusion's ``sampling.py``.

Each function takes a denoiser ``x0_fn(x, t) -> x̂0`` in a schedule's own time variable, a
:class:`~diffusers_infoflow.schedules.NoiseSchedule` and a descending sequence of times, and returns the final
sample. The scheduler classes are tested against these: same maths, written once more, plainly.
"""

from __future__ import annotations


def sample_trig_angle(pair_fn, x, angles, solver="rk4", final_x0=False):
    """Seed 004's ODE dx/dη = −sin η·x̂0 + cos η·ε̂ over descending ``angles`` (eqs. 10–13), plainly.

    ``pair_fn(x, η) -> (x̂0, ε̂)`` is the denoiser in the angle variable; ``solver`` is ``euler`` (eq. 13),
    ``rk2`` (Heun), ``rk4`` (classic) or ``ddim`` (the rotation ``x_s = cos η_s·x̂0 + sin η_s·ε̂``). With
    ``final_x0`` the last interval is not integrated: the result is x̂0 at the second-to-last angle. The
    reference for :class:`~diffusers_infoflow.schedulers.TrigAngleRKScheduler`.
    """
    import math

    def slope(x_, eta_):
        x0, eps = pair_fn(x_, eta_)
        return -math.sin(eta_) * x0 + math.cos(eta_) * eps

    angles = [float(a) for a in angles]
    if final_x0:
        x = sample_trig_angle(pair_fn, x, angles[:-1], solver)
        return pair_fn(x, angles[-2])[0]
    for eta, eta_next in zip(angles[:-1], angles[1:]):
        h = eta_next - eta
        if solver == "ddim":
            x0, eps = pair_fn(x, eta)
            x = math.cos(eta_next) * x0 + math.sin(eta_next) * eps
        elif solver == "euler":
            x = x + h * slope(x, eta)
        elif solver == "rk2":
            k1 = slope(x, eta)
            k2 = slope(x + h * k1, eta_next)
            x = x + h / 2 * (k1 + k2)
        elif solver == "rk4":
            k1 = slope(x, eta)
            k2 = slope(x + h / 2 * k1, eta + h / 2)
            k3 = slope(x + h / 2 * k2, eta + h / 2)
            k4 = slope(x + h * k3, eta_next)
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        else:
            raise ValueError(f"solver must be one of euler, rk2, rk4, ddim; got {solver!r}.")
    return x


def sample_trig_multistep(pair_fn, x, angles, order=3, predict_x0=True, corrector=False, lower_order_final=False,
                          interpolation="logsnr"):
    """The multistep exponential integrator of the angle ODE, written literally in its state form.

    x0 form: ``x_{i+1}/σ_{i+1} = x_i/σ_i + ∫ P(u) du`` (u = cot η, σ = sin η), P the polynomial in log u through
    the last ``min(order, i + 1)`` (u_j, x̂0_j); ε form (``predict_x0=False``): ``x/α`` and ρ = tan η, ε̂. The
    integral is done by 64-point Gauss–Legendre quadrature in t = log v (exact to round-off for polynomial ×
    e^t); ``interpolation="linear"``: P is a polynomial in v itself, integrated by the same rule in v. ``corrector``: redo the last step with the polynomial through the last ``order`` nodes including the
    new output (evaluated before the correction). ``lower_order_final``: step i of N (its predictor and the
    corrector of its start) has order at most N − 1 − i. Ends with x̂0 at the second-to-last angle (the last is 0).
    The reference for ``TrigAngleRKScheduler(solver="multistep")``.
    """
    import math

    import numpy as np

    nodes_gl, weights_gl = np.polynomial.legendre.leggauss(64)

    linear = interpolation == "linear"
    coordinate = (lambda v: v) if linear else math.log

    def integral(points, start, end):  # ∫_start^end P(c(v)) dv, P through (c(v_j), f_j), c = log or the identity
        t = [coordinate(v) for v, _ in points]
        a, b = coordinate(start), coordinate(end)
        total = 0.0
        for node, weight in zip(nodes_gl, weights_gl):
            s = 0.5 * (b - a) * node + 0.5 * (a + b)
            basis = [math.prod((s - t[m]) / (t[j] - t[m]) for m in range(len(t)) if m != j) for j in range(len(t))]
            jacobian = 1.0 if linear else math.exp(s)  # dv = e^t dt
            total = total + 0.5 * (b - a) * weight * jacobian * sum(c * f for c, (_, f) in zip(basis, points))
        return total

    angles = [float(a) for a in angles]
    var = (lambda e: math.cos(e) / math.sin(e)) if predict_x0 else (lambda e: math.sin(e) / math.cos(e))
    scale = math.sin if predict_x0 else math.cos
    history, pending = [], None
    for i, eta in enumerate(angles[:-1]):
        step_order = max(1, min(order, len(angles) - 2 - i)) if lower_order_final else order
        x0, eps = pair_fn(x, eta)
        point = (var(eta), x0 if predict_x0 else eps)
        if corrector and step_order > 1 and pending is not None:
            previous_scaled, previous_v = pending
            x = scale(eta) * (previous_scaled + integral((history + [point])[-step_order:], previous_v, point[0]))
        history = (history + [point])[-step_order:]
        if i == len(angles) - 2:
            return x0
        pending = (x / scale(eta), point[0])
        x = scale(angles[i + 1]) * (x / scale(eta) + integral(history, point[0], var(angles[i + 1])))
    raise ValueError("angles must hold at least two entries.")


def sample_s2n(x0_fn, schedule, times, x, gamma=0.0, delta=1.0, rho=0.0, noises=None):
    """Seed 001 Corollary 1 over descending ``times``, then to clean data (λ = +∞), written literally.

    ``x0_fn(x, t) -> x̂0`` in ``schedule``'s time; ``noises[k]`` is ξ of step k (needed when ``rho > 0``; the
    last step adds none). The reference for :class:`~diffusers_infoflow.schedulers.S2NGeneralizedScheduler`.
    """
    import math

    times = [float(t) for t in times]
    levels = [(float(schedule.alpha(t)), float(schedule.sigma(t)), float(schedule.logsnr(t))) for t in times]
    levels.append((1.0, 0.0, math.inf))  # clean data
    for k, ((a_t, s_t, lam_t), (a_s, s_s, lam_s)) in enumerate(zip(levels[:-1], levels[1:])):
        eps = (x - a_t * x0_fn(x, times[k])) / s_t
        bracket = math.exp(-(1 + gamma) * lam_t / 2) - (0.0 if math.isinf(lam_s) else math.exp(-(1 + gamma) * lam_s / 2))
        x_next = a_s / a_t * x - (1 + rho**2) / (1 + gamma) * a_s * bracket * math.exp(gamma * lam_t / 2) * eps
        if rho > 0 and s_s > 0:
            scale = rho * a_t * math.sqrt(math.exp(-lam_t) - math.exp(-lam_s)) * (a_s / a_t) ** (1 - delta) * (s_s / s_t) ** delta
            x_next = x_next + scale * noises[k]
        x = x_next
    return x


def sample_s2n_non_markovian(x0_fn, schedule, times, x, eta=0.0, noises=None):
    """Seed 001 eq. 9, ``z_s = α_s x̂0 + sqrt(σ_s² − β²)·ε̂ + β ξ``, with ``b(τ) = η²·log sigmoid(λ_τ)`` in the
    variance-preserving units of the same log-SNR and β capped at σ_s (the scheduler's documented choice)."""
    import math

    def log_sigmoid(v):
        return 0.0 if math.isinf(v) else -math.log1p(math.exp(-v))

    times = [float(t) for t in times]
    levels = [(float(schedule.alpha(t)), float(schedule.sigma(t)), float(schedule.logsnr(t))) for t in times]
    levels.append((1.0, 0.0, math.inf))
    for k, ((a_t, s_t, lam_t), (a_s, s_s, lam_s)) in enumerate(zip(levels[:-1], levels[1:])):
        x0 = x0_fn(x, times[k])
        eps = (x - a_t * x0) / s_t
        vp_var_s = 1.0 - math.exp(log_sigmoid(lam_s))
        vp_beta2 = min(eta**2 * (log_sigmoid(lam_s) - log_sigmoid(lam_t)), vp_var_s)
        beta = a_s / math.exp(log_sigmoid(lam_s) / 2) * math.sqrt(vp_beta2)
        x = a_s * x0 + math.sqrt(max(s_s**2 - beta**2, 0.0)) * eps
        if beta > 0:
            x = x + beta * noises[k]
    return x
