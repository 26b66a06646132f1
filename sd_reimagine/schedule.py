"""Schedule maths shared by both hosts: where img2img starts, where a handoff switches models."""

from __future__ import annotations

from collections.abc import Sequence

NUM_TRAIN_TIMESTEPS = 1000


def img2img_steps(steps: int, denoise: float) -> tuple[int, int]:
    """(index of the first step run, steps run) for img2img at `denoise`, as diffusers' img2img counts them."""
    run = min(int(steps * denoise), steps)
    return steps - run, run


def switch_timestep(switch_at: float, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> int:
    """First training timestep the refiner takes: 0.8 -> 200 (the refiner runs t < 200)."""
    return int(round(num_train_timesteps - switch_at * num_train_timesteps))


def handoff_steps(timesteps: Sequence[float], switch_at: float, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS):
    """(base steps, refiner steps) of a handoff: the base runs the timesteps >= the switch timestep."""
    cutoff = switch_timestep(switch_at, num_train_timesteps)
    base = sum(1 for t in timesteps if float(t) >= cutoff)
    return base, len(timesteps) - base


def sigma_at_timestep(alphas_cumprod: Sequence[float], timestep: int) -> float:
    """Noise level sigma = sqrt((1 - a) / a) of a training timestep (k-diffusion's parameterisation)."""
    alpha = float(alphas_cumprod[min(max(timestep, 0), len(alphas_cumprod) - 1)])
    return ((1 - alpha) / alpha) ** 0.5


def handoff_index_for_sigmas(sigmas: Sequence[float], sigma_switch: float) -> int:
    """Steps the base runs on a k-diffusion schedule: those starting at a sigma above the switch sigma."""
    return sum(1 for s in list(sigmas)[:-1] if float(s) > sigma_switch)


def describe_handoff(base_steps: int, refiner_steps: int, switch_at: float) -> str:
    cutoff = switch_timestep(switch_at)
    return f"base {base_steps} steps (t >= {cutoff}), refiner {refiner_steps} steps (t < {cutoff})"
