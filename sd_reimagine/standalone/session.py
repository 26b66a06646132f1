"""One object that both the CLI and the app use: loaded models, jobs, saving."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..images import InputImage
from ..mixing import Reference
from ..schema import REFINER, REIMAGINE, SDXL
from .models import PipelineCache, default_device, load_pipeline, model_name
from .output import next_index, save_png
from .unclip import UnclipVariations, VariationJob


class Session:
    """Keeps pipelines loaded between jobs and runs Reimagine (and SDXL) jobs."""

    def __init__(
        self, device: str | None = None, out_dir: Path | None = None, max_batch: int = 4, offload: bool = False
    ):
        auto_device, auto_dtype = default_device()
        self.device = device or auto_device
        self.dtype = auto_dtype if self.device == auto_device else None
        self.out_dir = Path(out_dir) if out_dir else Path("outputs")
        self.max_batch = max_batch
        self.offload = offload
        self._pipelines = PipelineCache(capacity=3)
        _quiet_library_warnings()

    def _dtype(self):
        import torch

        return self.dtype or (torch.float16 if self.device.startswith("cuda") else torch.float32)

    def unclip(self, spec: str) -> UnclipVariations:
        """A variations runner for an unCLIP model, loaded once and kept."""

        def load() -> UnclipVariations:
            from diffusers import StableUnCLIPImg2ImgPipeline

            pipe = load_pipeline(StableUnCLIPImg2ImgPipeline, spec, dtype=self._dtype()).to(self.device)
            pipe.set_progress_bar_config(disable=True)
            return UnclipVariations(pipe, model_name(spec), max_batch=self.max_batch)

        return self._pipelines.get(("unclip", spec, self.device), load)

    def variations(
        self,
        images: Sequence[tuple[InputImage, float]],
        values: dict[str, Any],
        progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        save: bool = True,
    ) -> tuple[VariationJob, list[Path]]:
        """Run one Reimagine job and save its images under out_dir/reimagine."""
        values = REIMAGINE.validate(values)
        runner = self.unclip(values["model"])
        references = [Reference(image, weight) for image, weight in images]
        job = runner(references, values, progress=progress, should_stop=should_stop)
        paths = [save_png(g.image, g.infotext, self.out_dir / "reimagine", g.seed) for g in job.images] if save else []
        return job, paths

    def relay(self, base: str | None, refiner: str | None):
        """An SDXL base + refiner relay (refiner sharing the base's text encoder 2 and VAE when identical)."""
        from .sdxl_loading import load_sdxl_relay

        def load():
            return load_sdxl_relay(
                base, refiner, dtype=self._dtype(), device=self.device, offload=self.offload, max_batch=self.max_batch
            )

        return self._pipelines.get(("sdxl", base, refiner, self.device), load)

    def sdxl(
        self,
        values: dict[str, Any],
        refiner_values: dict[str, Any],
        progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ):
        """Run SDXL base (+ refiner) and save final images, each followed by its kept base image."""
        values, refiner_values = SDXL.validate(values), REFINER.validate(refiner_values)
        refiner = refiner_values["refiner"] if refiner_values["enabled"] else None
        job = self.relay(values["base"], refiner).run(values, refiner_values, progress, should_stop)
        return job, self._save(job.all_images(), "sdxl")

    def refine(self, image: InputImage, refiner_values: dict[str, Any], seed: int = -1, progress=None):
        """Refine an existing image with the SDXL refiner (pixel bridge through the refiner's VAE)."""
        refiner_values = REFINER.validate({**refiner_values, "enabled": True, "refiner_mode": "refine"})
        relay = self.relay(None, refiner_values["refiner"])
        prompt = refiner_values["refiner_prompt"] or None
        negative = refiner_values["refiner_negative_prompt"] or None
        job = relay.refine_image(
            image, refiner_values, seed, prompt=prompt, negative_prompt=negative, progress=progress
        )
        return job, self._save(job.all_images(), "refined")

    def _save(self, images, folder: str) -> list[Path]:
        """Save final images, each kept base image under its final image's number (`-base` suffix)."""
        target = self.out_dir / folder
        paths: list[Path] = []
        number = next_index(target)
        for image in images:
            if image.label == "final" and paths:
                number += 1
            suffix = "" if image.label == "final" else image.label
            paths.append(save_png(image.image, image.infotext, target, image.seed, suffix, index=number))
        return paths


def _quiet_library_warnings() -> None:
    """transformers warns about optional torchvision on every processor; the PIL path it falls back to is fine."""
    from transformers.utils import logging

    logging.set_verbosity_error()
