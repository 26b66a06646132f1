"""Reimagine XL on the WebUI family's own SDXL model and samplers (A1111 and Forge): the core's pooled image
conditioning (`sd_reimagine.reimagine_xl`) put into the `vector` of each image's SDXL conditioning, per image seed,
and the vision tower from the WebUI's `models/clip_vision` (kept between jobs). Each host checks its own loaded
SDXL model (`a1111/reimagine.py`, `forge/reimagine_xl.py`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache

import torch

from ..clip_vision import VisionTower, find_image_encoder, load_vision_tower
from ..reimagine_plan import ReimaginePlan
from ..reimagine_xl import image_pooled_for_seed, mix_pooled

_towers: dict[str, VisionTower] = {}  # one loaded tower, kept between jobs (the bigG tower is large)


def clip_vision_folder() -> str:
    """The WebUI's `models/clip_vision` folder (under --data-dir when given)."""
    from modules import paths

    return os.path.join(paths.models_path, "clip_vision")


def vision_tower(spec: str, device=None, dtype=None) -> VisionTower:
    """The image encoder `spec` names (empty: clip_vision_g.safetensors, else the Hub id), loaded once, on the
    host's device and dtype (default: the WebUI's `shared.device` and `devices.dtype`)."""
    source = find_image_encoder(spec, [clip_vision_folder()])
    if source not in _towers:
        if device is None or dtype is None:
            from modules import devices, shared

            device, dtype = shared.device, devices.dtype
        _towers.clear()
        _towers[source] = load_vision_tower(source, [clip_vision_folder()], dtype=dtype, device=device)
    return _towers[source]


class XlConditioning:
    """Each image's SDXL conditioning with the Reimagine image embedding in its pooled part, as the core plans it."""

    def __init__(self, plan: ReimaginePlan, tower: VisionTower):
        self.plan = plan
        self.tower = tower
        self._embeds: torch.Tensor | None = None

    def embeds(self) -> torch.Tensor:
        """bigG image embeddings (k, D) of the references (computed once)."""
        if self._embeds is None:
            self._embeds = torch.cat([self.tower.embed(r.image) for r in self.plan.references])
        return self._embeds

    def image_parts(self, seeds: Sequence[int]) -> list[torch.Tensor]:
        """The image part (1, D) of every image's pooled embedding, from the image's own seeded generator."""
        embeds = self.embeds()
        return [image_pooled_for_seed(embeds, self.plan, torch.Generator().manual_seed(int(s))) for s in seeds]

    def apply(self, conditioning, seeds: Sequence[int]):
        """A copy of the WebUI's multicond conditioning of a batch with each row's `vector` carrying its image."""
        from modules.prompt_parser import (
            ComposableScheduledPromptConditioning,
            MulticondLearnedConditioning,
            ScheduledPromptConditioning,
        )

        parts = self.image_parts(seeds)
        if len(parts) != len(conditioning.batch):
            raise RuntimeError(f"Reimagine XL: {len(conditioning.batch)} prompts for {len(parts)} seeds")
        zero_context = not self.plan.values["prompt"].strip()
        batch = []
        for part, composables in zip(parts, conditioning.batch, strict=True):
            row = []
            for composable in composables:
                schedules = [
                    ScheduledPromptConditioning(s.end_at_step, self.with_image(s.cond, part, zero_context))
                    for s in composable.schedules
                ]
                row.append(ComposableScheduledPromptConditioning(schedules, composable.weight))
            batch.append(row)
        return MulticondLearnedConditioning(conditioning.shape, batch)

    def with_image(self, cond: dict, part: torch.Tensor, zero_context: bool) -> dict:
        """One prompt's {crossattn, vector} with the pooled slot mixed as the core says."""
        vector, size = cond["vector"], part.shape[-1]
        pooled = mix_pooled(part, vector[:size], self.plan.values["image_text_mix"])
        crossattn = torch.zeros_like(cond["crossattn"]) if zero_context else cond["crossattn"]
        return {**cond, "crossattn": crossattn, "vector": torch.cat([pooled[0].to(vector), vector[size:]])}


@lru_cache(maxsize=1)
def processing_classes() -> tuple[type, type]:
    """(txt2img, img2img) processing classes whose batch conditioning carries the Reimagine XL image embedding."""
    from modules import processing

    class ReimagineXlTxt2Img(processing.StableDiffusionProcessingTxt2Img):
        """Variations from noise: SDXL txt2img with the image embedding in each image's pooled conditioning."""

        reimagine_xl: XlConditioning | None = None

        def sample(self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
            conditioning = self.reimagine_xl.apply(conditioning, seeds)
            return super().sample(conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts)

    class ReimagineXlImg2Img(processing.StableDiffusionProcessingImg2Img):
        """Structure strength: SDXL img2img from the first reference, same conditioning."""

        reimagine_xl: XlConditioning | None = None

        def sample(self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
            conditioning = self.reimagine_xl.apply(conditioning, seeds)
            return super().sample(conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts)

    return ReimagineXlTxt2Img, ReimagineXlImg2Img
