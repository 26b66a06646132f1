"""Reimagine XL on diffusers: the core's plan and pooled image conditioning (`sd_reimagine.reimagine_xl`) executed
by diffusers' own SDXL pipelines, fed the prompt embeddings with the image embedding in the pooled slot."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..clip_vision import VisionTower
from ..infotext import job_infotext
from ..mixing import Reference
from ..reimagine_plan import GeneratedImage, ReimagineFacts, ReimaginePlan, VariationResult, plan_reimagine
from ..reimagine_xl import (
    POOLED_DIM,
    XL_ENGINE,
    check_embedding_size,
    context_for_prompt,
    engine_for_kind,
    pooled_for_seed,
)
from ..schedule import img2img_steps
from ..schema import REIMAGINE, SDXL_BASE
from .latents import encode_pixels
from .schedulers import make_scheduler
from .sdxl import StepCounter, using_scheduler

ProgressFn = Callable[[int, int], None]
CLIP_VISION_FOLDERS = ("models/clip_vision",)  # where the standalone host looks for clip_vision_g.safetensors


def model_engine(spec: str) -> str:
    """The Reimagine engine of a model spec, told from its header or model_index.json (nothing loaded)."""
    from .models import pipeline_kind, single_file_kind

    if spec == SDXL_BASE:
        return XL_ENGINE
    path = Path(spec).expanduser()
    kind, _ = single_file_kind(path) if path.is_file() else pipeline_kind(spec, path)
    return engine_for_kind(kind)


def pooled_size(spec: str) -> int:
    """The SDXL base's pooled text embedding size, read from its files before loading (1280 when not known)."""
    import json

    from ..checkpoints import read_safetensors_header

    path = Path(spec).expanduser()
    try:
        if path.is_dir():
            config = json.loads((path / "text_encoder_2" / "config.json").read_text(encoding="utf-8"))
            return int(config["projection_dim"])
        if path.suffix == ".safetensors":
            shape = read_safetensors_header(path).get("conditioner.embedders.1.model.text_projection")
            return int(shape[-1]) if shape else POOLED_DIM
    except (OSError, ValueError, KeyError, TypeError):
        pass  # the pipeline loader reports unreadable models
    return POOLED_DIM


class XlVariations:
    """Runs Reimagine jobs on a loaded `StableDiffusionXLPipeline` (an SDXL base) and a bigG vision tower."""

    def __init__(self, pipe, tower: VisionTower, model_name: str, max_batch: int = 4):
        self.pipe = pipe
        self.tower = tower
        self.model_name = model_name
        self.max_batch = max_batch
        self._img2img = None

    @property
    def device(self) -> torch.device:
        """Where the models compute (the GPU under CPU offload)."""
        return self.pipe._execution_device

    @torch.no_grad()
    def __call__(
        self,
        references: Sequence[Reference],
        values: dict[str, Any],
        progress: ProgressFn | None = None,
        should_stop: Callable[[], bool] | None = None,
        output_type: str = "pil",
    ) -> VariationResult:
        # 1. Check inputs and plan the job (seeds, batches, start, infotext)
        facts = ReimagineFacts(self.model_name, self.max_batch, engine=XL_ENGINE, image_encoder=self.tower.name)
        plan = plan_reimagine(values, references, facts)
        values = plan.values
        check_embedding_size(self.tower.embedding_size, self.pipe.text_encoder_2.config.projection_dim)
        # 2. Encode prompt and references
        text = self.encode_prompt(values)
        embeds = torch.cat([self.tower.embed(r.image) for r in plan.references])
        init_latents = self.encode_structure(plan) if plan.denoise < 1.0 else None
        # 3. Sample batch by batch as planned
        steps_run = img2img_steps(values["steps"], plan.denoise)[1] if init_latents is not None else values["steps"]
        counter = StepCounter(steps_run * len(plan.seeds), progress, should_stop)
        fields = plan.fields()
        images: list[GeneratedImage] = []
        for batch_seeds in plan.batches:
            batch = self.sample_batch(batch_seeds, plan, embeds, text, init_latents, counter, output_type)
            for seed, image in zip(batch_seeds, batch, strict=True):
                infotext = job_infotext(REIMAGINE, values, seed, self.model_name, fields)
                images.append(GeneratedImage(image, seed, infotext))
            if counter.interrupted:
                break
        return VariationResult(images, values, counter.interrupted)

    def encode_prompt(self, values: dict[str, Any]) -> dict[str, torch.Tensor | None]:
        """The SDXL text conditioning of the prompt and negative prompt (the pipeline's own encoders)."""
        do_cfg = values["cfg_scale"] > 1.0
        context, negative, pooled, negative_pooled = self.pipe.encode_prompt(
            prompt=values["prompt"],
            device=self.device,
            num_images_per_prompt=1,
            do_classifier_free_guidance=do_cfg,
            negative_prompt=values["negative_prompt"] or None,
        )
        context = context_for_prompt(context, values["prompt"])
        return {"context": context, "pooled": pooled, "negative": negative, "negative_pooled": negative_pooled}

    def encode_structure(self, plan: ReimaginePlan) -> torch.Tensor:
        """Scaled latents of the first reference at the job's size (structure strength: img2img start)."""
        values = plan.values
        image = plan.references[0].image.image
        pixels = self.pipe.image_processor.preprocess(image, height=values["height"], width=values["width"])
        return encode_pixels(self.pipe.vae, pixels)

    def sample_batch(self, seeds, plan: ReimaginePlan, embeds, text, init_latents, counter: StepCounter, output_type):
        """One diffusers call for a batch: each image's pooled conditioning and noise from its own generator."""
        values, count = plan.values, len(seeds)
        generators = [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]
        # Embedding noise first, then the pipeline's latent noise, from each image's generator (as unCLIP does).
        pooled = torch.cat([pooled_for_seed(embeds, plan, g, text["pooled"]) for g in generators])
        kwargs: dict[str, Any] = {
            "prompt_embeds": text["context"].expand(count, -1, -1),
            "pooled_prompt_embeds": pooled,
            "num_inference_steps": values["steps"],
            "guidance_scale": values["cfg_scale"],
            "generator": generators[0] if count == 1 else generators,
            "output_type": output_type,
            "callback_on_step_end": counter.callback,
        }
        if text["negative"] is not None:
            kwargs["negative_prompt_embeds"] = text["negative"].expand(count, -1, -1)
            kwargs["negative_pooled_prompt_embeds"] = text["negative_pooled"].expand(count, -1)
        pipe = self.pipe
        if init_latents is not None:
            pipe = self.img2img_pipe()
            kwargs |= {"image": init_latents.expand(count, -1, -1, -1), "strength": plan.denoise}
        else:
            kwargs |= {"height": values["height"], "width": values["width"]}
        scheduler = make_scheduler(self.pipe.scheduler, values["sampler"], values["schedule_type"])
        with using_scheduler(pipe, scheduler):
            return list(pipe(**kwargs).images)

    def img2img_pipe(self):
        """The base's components as an img2img pipeline (built once, no weights copied)."""
        if self._img2img is None:
            from diffusers import StableDiffusionXLImg2ImgPipeline

            self._img2img = StableDiffusionXLImg2ImgPipeline.from_pipe(self.pipe)
            self._img2img.set_progress_bar_config(disable=True)
        return self._img2img
