"""Item 3: the SDXL relay vs diffusers' base(denoising_end) + refiner(denoising_start) and img2img."""

from __future__ import annotations

from typing import Any

import torch

from .harness import SIZES, Settings, alternate, reference_images, row, sdxl_pair, timer_for

PROMPT = "a lighthouse on a cliff"
SEED = 1234
SWITCH_AT = 0.8
STRENGTH = 0.3
CFG = 7.0


def _values(size: str) -> dict[str, Any]:
    spec = SIZES[size]
    return {
        "prompt": PROMPT,
        "n": 1,
        "seed": SEED,
        "steps": spec["steps"],
        "cfg_scale": CFG,
        "width": spec["side"],
        "height": spec["side"],
    }


def _refiner_values(mode: str, steps: int) -> dict[str, Any]:
    return {
        "enabled": True,
        "refiner_mode": mode,
        "switch_at": SWITCH_AT,
        "refine_strength": STRENGTH,
        "refiner_steps": steps,
        "refiner_cfg_scale": CFG,
        "keep_base": False,  # the reference returns only the final image; keep_base would add a base VAE decode
    }


def _gen() -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(SEED)


def bench_sdxl(size: str, settings: Settings, pair=None) -> list[dict[str, Any]]:
    """Handoff and refine jobs vs the two documented diffusers calls; refine_image vs refiner img2img on pixels;
    and the latent hand-off vs a pixel round trip (VAE decode + encode between base and refiner)."""
    from sd_reimagine.standalone.latents import decode_latents, encode_pixels
    from sd_reimagine.standalone.sdxl import SdxlRelay, refine_image

    base, refiner = pair or sdxl_pair(SIZES[size]["scale"])
    relay = SdxlRelay(base, refiner, "bench-base", "bench-refiner")
    values = _values(size)
    steps, side = values["steps"], values["width"]
    timer = timer_for(base, refiner)
    common = {"prompt": PROMPT, "guidance_scale": CFG, "height": side, "width": side}
    refiner_common = {"prompt": PROMPT, "guidance_scale": CFG}

    def handoff_ours():
        return relay.run(dict(values), _refiner_values("handoff", steps), output_type="np")

    def base_latents(**kwargs):
        return base(num_inference_steps=steps, generator=_gen(), output_type="latent", **common, **kwargs).images

    def refiner_after_switch(latents):
        return refiner(
            image=latents,
            num_inference_steps=steps,
            denoising_start=SWITCH_AT,
            generator=_gen(),
            output_type="np",
            **refiner_common,
        ).images

    def handoff_reference():
        return refiner_after_switch(base_latents(denoising_end=SWITCH_AT))

    def handoff_pixels():
        latents = base_latents(denoising_end=SWITCH_AT)
        return refiner_after_switch(encode_pixels(refiner.vae, decode_latents(base.vae, latents).clamp(-1, 1)))

    def refine_ours():
        return relay.run(dict(values), _refiner_values("refine", steps), output_type="np")

    def refine_reference():
        latents = base_latents()
        return refiner(
            image=latents,
            strength=STRENGTH,
            num_inference_steps=steps,
            generator=_gen(),
            output_type="np",
            **refiner_common,
        ).images

    image = reference_images(1, side)[0]

    def refine_image_ours():
        return refine_image(
            refiner,
            image,
            _refiner_values("refine", steps),
            seed=SEED,
            prompt=PROMPT,
            negative_prompt="",
            output_type="np",
        )

    def refine_image_reference():
        return refiner(
            image=image.image,
            strength=STRENGTH,
            num_inference_steps=steps,
            generator=_gen(),
            output_type="np",
            **refiner_common,
        ).images

    target = "ratio <= 1.0, overhead <= 1.03"
    rows = []
    try:
        mine, theirs = alternate(handoff_ours, handoff_reference, settings, timer)
        rows.append(
            row(
                "3 SDXL",
                size,
                f"handoff job (switch {SWITCH_AT})",
                mine,
                theirs,
                "base(denoising_end, latent) + refiner(denoising_start)",
                target=target,
                overhead=True,
            )
        )
        latent_runs, pixel_runs = alternate(handoff_reference, handoff_pixels, settings)
        r = row(
            "3 SDXL",
            size,
            "latent hand-off vs pixel round trip",
            latent_runs,
            pixel_runs,
            "same calls + VAE decode/encode between base and refiner",
            target="ratio < 1.0",
        )
        saving = r["reference"]["median"] - r["ours"]["median"]
        r["note"] = f"saving {saving * 1000:.1f} ms per image (median)"
        r["saving_s"] = saving
        rows.append(r)
        mine, theirs = alternate(refine_ours, refine_reference, settings, timer)
        rows.append(
            row(
                "3 SDXL",
                size,
                f"refine job (strength {STRENGTH})",
                mine,
                theirs,
                "base(latent) + refiner img2img(strength)",
                target=target,
                overhead=True,
            )
        )
        mine, theirs = alternate(refine_image_ours, refine_image_reference, settings, timer)
        rows.append(
            row(
                "3 SDXL",
                size,
                "refine_image (existing picture)",
                mine,
                theirs,
                "refiner img2img(image=PIL, strength)",
                target=target,
                overhead=True,
            )
        )
    finally:
        timer.detach()
    return rows
