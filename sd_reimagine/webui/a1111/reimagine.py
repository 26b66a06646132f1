"""Reimagine in A1111: unCLIP on A1111's own ldm unCLIP model (its embedder and noise augmentor), the core's mixed,
seeded conditioning per image; Reimagine XL on its sgm SDXL model. The checkpoint is swapped in with
`a1111.swap.swapped_model` and the user's model is restored afterwards."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from contextlib import closing
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from ...errors import ModelNotAvailableError, ParamError
from ...images import InputImage
from ...reimagine_plan import ReimagineFacts, ReimaginePlan, VariationResult, conditioning_for_seed, plan_reimagine
from ...reimagine_xl import XL_ENGINE, check_embedding_size, engine_for_kind
from .. import reimagine_xl, settings
from ..checkpoint_lookup import checkpoint_kind, resolve_for_role
from ..reimagine import host_group, job_result, job_timings, make_processing
from ..reimagine_post_step import attach_post_step
from ..swap_records import SWAP_TIMES
from .swap import swapped_model

CLIP_L_FILE = "ViT-L-14.pt"


def image_tensor(image) -> torch.Tensor:
    """A PIL RGB image as (1, 3, H, W) in [-1, 1], as the WebUI's img2img hands images to the unCLIP embedder."""
    array = np.moveaxis(np.array(image.convert("RGB")).astype(np.float32) / 255.0, 2, 0)
    return torch.from_numpy(array)[None] * 2.0 - 1.0


def noise_augment(noise_augmentor, noise_level: int):
    """augment(embeds, noise) for `mixed_conditioning`: the model's CLIPEmbeddingNoiseAugmentation, noise given."""

    def augment(embeds: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        level = torch.full((embeds.shape[0],), int(noise_level), dtype=torch.long, device=embeds.device)
        noised = noise_augmentor.q_sample(noise_augmentor.scale(embeds), level, noise=noise.to(embeds))
        return torch.cat((noise_augmentor.unscale(noised), noise_augmentor.time_embed(level)), 1)

    return augment


class ReimagineConditioning:
    """Each image's conditioning as the core plans it, on the model's own embedder and noise augmentor."""

    def __init__(self, plan: ReimaginePlan):
        self.plan = plan
        self._embeds: torch.Tensor | None = None

    def embeds(self, sd_model) -> torch.Tensor:
        """CLIP image embeddings (k, D) of the references, from the model's own embedder (computed once)."""
        if self._embeds is None:
            from modules import devices, shared

            with torch.no_grad(), devices.autocast():
                rows = [
                    sd_model.embedder(image_tensor(r.image.image).to(shared.device, dtype=devices.dtype_vae))
                    for r in self.plan.references
                ]
            self._embeds = torch.cat(rows)
        return self._embeds

    def for_seeds(self, sd_model, seeds: Sequence[int]) -> torch.Tensor:
        """The c_adm conditioning (len(seeds), D + level dim): one row per image seed."""
        embeds = self.embeds(sd_model)
        augment = noise_augment(sd_model.noise_augmentor, self.plan.values["noise_level"])
        with torch.no_grad():
            rows = [
                conditioning_for_seed(embeds, self.plan, torch.Generator(device="cpu").manual_seed(int(s)), augment)
                for s in seeds
            ]
        return torch.cat(rows)


@lru_cache(maxsize=1)
def processing_classes() -> tuple[type, type]:
    """(txt2img, img2img) processing classes whose unCLIP conditioning is the Reimagine conditioning."""
    from modules import processing

    class ReimagineTxt2Img(processing.StableDiffusionProcessingTxt2Img):
        """Variations from noise at any size: txt2img with the Reimagine image conditioning."""

        reimagine: ReimagineConditioning | None = None

        def txt2img_image_conditioning(self, x, width=None, height=None):
            return self.reimagine.for_seeds(self.sd_model, self.seeds).to(device=x.device, dtype=x.dtype)

    class ReimagineImg2Img(processing.StableDiffusionProcessingImg2Img):
        """Structure strength: img2img from the first reference with the Reimagine image conditioning."""

        reimagine: ReimagineConditioning | None = None

        def unclip_image_conditioning(self, source_image):
            seeds = self.seeds or self.all_seeds[: self.batch_size]
            return self.reimagine.for_seeds(self.sd_model, seeds).to(source_image.device)

        def sample(self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
            cond = self.reimagine.for_seeds(self.sd_model, seeds)
            self.image_conditioning = cond.to(device=self.init_latent.device, dtype=self.init_latent.dtype)
            return super().sample(conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts)

    return ReimagineTxt2Img, ReimagineImg2Img


def check_reimagine_checkpoint(model: str):
    """The CheckpointInfo of a loadable unCLIP or SDXL base checkpoint (errors name the `model` field) and its
    engine; unCLIP-L's CLIP weights checked."""
    info = resolve_for_role(model, "model", "reimagine")
    kind = checkpoint_kind(info.filename)
    if kind == "unclip-l":
        check_clip_l_weights()
    return info, engine_for_kind(kind)


def clip_cache_dir() -> str:
    """Where OpenAI `clip.load` keeps its weights (the unCLIP-L embedder calls it with no download_root)."""
    return os.path.expanduser("~/.cache/clip")


def offline() -> bool:
    """Whether this process was told to stay offline."""
    flags = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "REIMAGINE_OFFLINE")
    return any(os.environ.get(f, "").strip().lower() in ("1", "true", "yes", "on") for f in flags)


def check_clip_l_weights() -> None:
    """unCLIP-L loads OpenAI CLIP ViT-L/14 by name: refuse clearly when it is not cached and we are offline."""
    path = os.path.join(clip_cache_dir(), CLIP_L_FILE)
    if os.path.isfile(path):
        return
    if offline():
        raise ModelNotAvailableError(
            f"unCLIP-L needs the OpenAI CLIP ViT-L/14 image encoder ({path}), which is not there and this WebUI is "
            "offline: copy ViT-L-14.pt into that folder (or go online once), or use an unCLIP-H checkpoint"
        )
    print(f"Reimagine: unCLIP-L will download OpenAI CLIP ViT-L/14 (~890 MB) into {clip_cache_dir()}")


def check_loaded_sdxl(sd_model, title: str, tower) -> None:
    """The loaded model must be an SDXL model whose pooled text embedding the tower's embedding can replace."""
    # The OpenCLIP bigG text embedder (the WebUI wraps it, `.wrapped`) projects the pooled text embedding.
    embedders = [getattr(e, "wrapped", e) for e in getattr(getattr(sd_model, "conditioner", None), "embedders", [])]
    projections = [getattr(getattr(e, "model", None), "text_projection", None) for e in embedders]
    pooled = [p.shape[-1] for p in projections if p is not None]
    if not getattr(sd_model, "is_sdxl", False) or not pooled:
        raise ParamError("model", title, "an SDXL base checkpoint (the WebUI did not load it as one)")
    check_embedding_size(tower.embedding_size, int(pooled[0]))


def check_loaded_unclip(sd_model, title: str) -> None:
    """The loaded model must be an unCLIP model with an embedder and a noise augmentor."""
    is_unclip = getattr(getattr(sd_model, "model", None), "conditioning_key", None) == "crossattn-adm"
    if not is_unclip or getattr(sd_model, "embedder", None) is None or sd_model.noise_augmentor is None:
        raise ParamError("model", title, "an unCLIP checkpoint (the WebUI did not load it as one)")


def processing_for_engine(plan: ReimaginePlan, tower, title: str, save: bool, is_api: bool):
    """The processing of a plan on the loaded model: unCLIP's, or Reimagine XL's with the vision tower."""
    from modules import shared

    if tower is None:
        check_loaded_unclip(shared.sd_model, title)
        p = make_processing(plan, save, is_api, processing_classes())
        p.reimagine = ReimagineConditioning(plan)
        return p
    check_loaded_sdxl(shared.sd_model, title, tower)
    p = make_processing(plan, save, is_api, reimagine_xl.processing_classes())
    p.reimagine_xl = reimagine_xl.XlConditioning(plan, tower)
    return p


def run_reimagine(
    references: Sequence[tuple[InputImage, float]],
    values: dict[str, Any],
    *,
    save: bool = True,
    is_api: bool = False,
    refiner: dict[str, Any] | None = None,
) -> VariationResult:
    """One Reimagine job on the chosen unCLIP (or, Reimagine XL, SDXL base) checkpoint, optionally followed by the
    SDXL Refiner post-step (`refiner`: its checked values); the user's model is restored afterwards."""
    from modules import processing

    started = time.perf_counter()
    values = host_group().validate(values)
    info, engine = check_reimagine_checkpoint(values["model"] or settings.default_model())
    # The XL image encoder loads before any swap: a missing one is refused with the user's model untouched.
    tower = reimagine_xl.vision_tower(values["image_encoder"]) if engine == XL_ENGINE else None
    encoder = tower.name if tower is not None else ""
    facts = ReimagineFacts(
        info.title, settings.batch_limit(), uneven_batches=False, engine=engine, image_encoder=encoder
    )
    plan = plan_reimagine(values, references, facts, host_group())
    swaps_before = len(SWAP_TIMES)
    with swapped_model(info, field="model"):
        p = processing_for_engine(plan, tower, info.title, save, is_api)
        attach_post_step(p, refiner)
        sampling = time.perf_counter()
        with closing(p):
            processed = processing.process_images(p)
        sampling = time.perf_counter() - sampling
    return job_result(processed, plan, job_timings(started, sampling, swaps_before))
