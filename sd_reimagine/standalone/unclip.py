"""Stable unCLIP variations on diffusers: references mixed, noise-augmented per image seed, the UNet batched."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..images import InputImage
from ..infotext import job_infotext
from ..mixing import Reference
from ..reimagine_plan import (
    GeneratedImage,
    ReimagineFacts,
    ReimaginePlan,
    VariationResult,
    conditioning_for_seed,
    plan_reimagine,
)
from ..schedule import img2img_steps
from ..schema import REIMAGINE
from .low_vram import release_after_job
from .schedulers import make_scheduler

ProgressFn = Callable[[int, int], None]
VariationJob = VariationResult  # the name the standalone host used before the result type moved into the core


@dataclass
class _Caches:
    """Reference embeddings and prompt conditioning kept between jobs ("Generate again" skips the encoders)."""

    image_embeds: dict[str, torch.Tensor] = field(default_factory=dict)
    prompts: dict[tuple, tuple[torch.Tensor, torch.Tensor | None]] = field(default_factory=dict)
    limit: int = 32

    def trim(self) -> None:
        for cache in (self.image_embeds, self.prompts):
            while len(cache) > self.limit:
                cache.pop(next(iter(cache)))


class UnclipVariations:
    """Runs Reimagine jobs on a loaded `StableUnCLIPImg2ImgPipeline`."""

    def __init__(self, pipe, model_name: str, max_batch: int = 4, use_cache: bool = True):
        self.pipe = pipe
        self.model_name = model_name
        self.max_batch = max_batch
        self.use_cache = use_cache
        self.caches = _Caches()

    @property
    def device(self) -> torch.device:
        """Where the models compute (the GPU under CPU offload, where the weights wait in CPU memory)."""
        return self.pipe._execution_device

    @property
    def dtype(self) -> torch.dtype:
        return self.pipe.unet.dtype

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
        plan = plan_reimagine(values, references, ReimagineFacts(self.model_name, self.max_batch))
        values = plan.values
        do_cfg = values["cfg_scale"] > 1.0
        # 2. Encode prompt and references (cached)
        prompt_embeds, negative_embeds = self.encode_prompt(values["prompt"], values["negative_prompt"], do_cfg)
        embeds = torch.cat([self.encode_image(r.image) for r in plan.references])
        init_latents = self.encode_structure(plan.references[0].image, values) if plan.denoise < 1.0 else None
        # 3. Sample batch by batch as planned
        fields = plan.fields()
        images, interrupted = [], False
        for batch_seeds in plan.batches:
            batch, interrupted = self.sample_batch(
                batch_seeds, plan, embeds, prompt_embeds, negative_embeds, init_latents, progress, should_stop
            )
            for seed, image in zip(batch_seeds, self.decode(batch, output_type), strict=True):
                infotext = job_infotext(REIMAGINE, values, seed, self.model_name, fields)
                images.append(GeneratedImage(image, seed, infotext))
            if interrupted:
                break
        self.caches.trim()
        release_after_job(self.pipe)
        return VariationResult(images, values, interrupted)

    def encode_prompt(self, prompt: str, negative_prompt: str, do_cfg: bool):
        key = (prompt, negative_prompt, do_cfg)
        if self.use_cache and key in self.caches.prompts:
            return self.caches.prompts[key]
        encoded = self.pipe.encode_prompt(
            prompt=prompt,
            device=self.device,
            num_images_per_prompt=1,
            do_classifier_free_guidance=do_cfg,
            negative_prompt=negative_prompt or None,
        )
        if self.use_cache:
            self.caches.prompts[key] = encoded
        return encoded

    def encode_image(self, image: InputImage) -> torch.Tensor:
        """The CLIP image embedding (1, D) of one reference, from the pipeline's own feature extractor."""
        if self.use_cache and image.digest in self.caches.image_embeds:
            return self.caches.image_embeds[image.digest]
        pixels = self.pipe.feature_extractor(images=image.image, return_tensors="pt").pixel_values
        encoder = self.pipe.image_encoder
        embeds = encoder(pixels.to(device=self.device, dtype=encoder.dtype)).image_embeds
        if self.use_cache:
            self.caches.image_embeds[image.digest] = embeds
        return embeds

    def encode_structure(self, image: InputImage, values: dict[str, Any]) -> torch.Tensor:
        """Latents of the first reference at the job's size, for structure strength (img2img start)."""
        pixels = self.pipe.image_processor.preprocess(image.image, height=values["height"], width=values["width"])
        pixels = pixels.to(device=self.device, dtype=self.pipe.vae.dtype)
        latents = self.pipe.vae.encode(pixels).latent_dist.mode()
        return latents * self.pipe.vae.config.scaling_factor

    def conditioning(self, generator, plan: ReimaginePlan, embeds) -> tuple[torch.Tensor, torch.Tensor]:
        """Class conditioning of one image and its first latent noise, both drawn from the image's generator (in
        diffusers' order: embedding noise first)."""
        from diffusers.utils.torch_utils import randn_tensor

        values = plan.values
        level = values["noise_level"]

        def augment(e: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
            return self.pipe.noise_image_embeddings(e, level, noise=n)

        cond = conditioning_for_seed(embeds, plan, generator, augment, embeds.dtype)
        scale = self.pipe.vae_scale_factor
        shape = (1, self.pipe.unet.config.in_channels, values["height"] // scale, values["width"] // scale)
        noise = randn_tensor(shape, generator=generator, device=self.device, dtype=self.dtype)
        return cond, noise

    def sample_batch(
        self, seeds, plan: ReimaginePlan, embeds, prompt_embeds, negative_embeds, init_latents, progress, stop
    ):
        """Denoise one batch; returns (latents, interrupted)."""
        values = plan.values
        generators = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
        conds, noises = zip(*(self.conditioning(g, plan, embeds) for g in generators), strict=True)
        cond, noise = torch.cat(conds), torch.cat(noises)
        scheduler = make_scheduler(self.pipe.scheduler, values["sampler"], values["schedule_type"])
        scheduler.set_timesteps(values["steps"], device=self.device)
        timesteps = scheduler.timesteps
        if init_latents is not None:
            start, _ = img2img_steps(values["steps"], plan.denoise)
            timesteps = timesteps[start * scheduler.order :]
            if hasattr(scheduler, "set_begin_index"):
                scheduler.set_begin_index(start * scheduler.order)
            latents = scheduler.add_noise(init_latents.expand_as(noise), noise, timesteps[:1].repeat(len(seeds)))
        else:
            latents = noise * scheduler.init_noise_sigma
        do_cfg = negative_embeds is not None and values["cfg_scale"] > 1.0
        text = prompt_embeds.expand(len(seeds), -1, -1)
        if do_cfg:
            text = torch.cat([negative_embeds.expand(len(seeds), -1, -1), text])
            cond = torch.cat([torch.zeros_like(cond), cond])
        step_kwargs = _step_kwargs(scheduler, generators[0] if len(generators) == 1 else generators)
        for i, t in enumerate(timesteps):
            if stop is not None and stop():
                return latents, True
            model_input = torch.cat([latents] * 2) if do_cfg else latents
            model_input = scheduler.scale_model_input(model_input, t)
            with torch.no_grad():
                pred = self.pipe.unet(model_input, t, encoder_hidden_states=text, class_labels=cond, return_dict=False)[
                    0
                ]
            if do_cfg:
                uncond, conditioned = pred.chunk(2)
                pred = uncond + values["cfg_scale"] * (conditioned - uncond)
            latents = scheduler.step(pred, t, latents, **step_kwargs, return_dict=False)[0]
            if progress is not None:
                progress(i + 1, len(timesteps))
        return latents, False

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, output_type: str = "pil") -> list:
        pixels = self.pipe.vae.decode(latents / self.pipe.vae.config.scaling_factor, return_dict=False)[0]
        images = self.pipe.image_processor.postprocess(pixels, output_type=output_type)
        return list(images)


def _step_kwargs(scheduler, generator) -> dict[str, Any]:
    import inspect

    accepted = set(inspect.signature(scheduler.step).parameters)
    kwargs: dict[str, Any] = {}
    if "eta" in accepted:
        kwargs["eta"] = 0.0
    if "generator" in accepted:
        kwargs["generator"] = generator
    return kwargs
