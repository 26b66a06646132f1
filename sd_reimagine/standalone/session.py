"""One object that both the CLI and the app use: loaded models, jobs, saving."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import ParamError
from ..images import InputImage
from ..mixing import Reference
from ..reimagine_xl import XL_ENGINE, check_embedding_size
from ..schema import REFINER, REIMAGINE, SDXL
from .low_vram import MemoryOptions, offload_note, place_module, place_pipeline
from .models import PipelineCache, default_device, load_pipeline, model_name
from .output import REFINED_FOLDER, SDXL_FOLDER, VARIATIONS_FOLDER, job_folder, next_index, save_png
from .reimagine_xl import CLIP_VISION_FOLDERS, XlVariations, model_engine, pooled_size
from .unclip import UnclipVariations, VariationJob

DTYPES = ("float32", "float16", "bfloat16")


class Session:
    """Keeps pipelines loaded between jobs and runs Reimagine (and SDXL) jobs."""

    def __init__(
        self,
        device: str | None = None,
        out_dir: Path | None = None,
        max_batch: int = 4,
        offload: bool | str = False,
        dtype: str | None = None,
        vae_tiling: bool = False,
    ):
        """`dtype`: one of DTYPES that `device` supports (None: float16 on CUDA, else float32); else ParamError.
        `offload` (none, model, sequential; True = model) and `vae_tiling`: the low-VRAM options (`low_vram`)."""
        self.device = device or default_device()[0]
        self.dtype = pick_dtype(dtype, self.device)
        self.out_dir = Path(out_dir) if out_dir else Path("outputs")
        self.max_batch = max_batch
        mode = {True: "model", False: "none", None: "none"}.get(offload, offload)  # type: ignore[call-overload]
        self.memory = MemoryOptions.from_values({"offload": mode, "vae_tiling": vae_tiling})
        self.note = offload_note(self.device, self.memory)  # shown by the CLI and the app when not empty
        self._pipelines = PipelineCache(capacity=3)
        _quiet_library_warnings()

    def _dtype(self) -> torch.dtype:
        return self.dtype

    def unclip(self, spec: str) -> UnclipVariations:
        """A variations runner for an unCLIP model, loaded once and kept."""

        def load() -> UnclipVariations:
            from diffusers import StableUnCLIPImg2ImgPipeline

            pipe = load_pipeline(StableUnCLIPImg2ImgPipeline, spec, dtype=self._dtype())
            place_pipeline(pipe, self.device, self.memory)
            pipe.set_progress_bar_config(disable=True)
            return UnclipVariations(pipe, model_name(spec), max_batch=self.max_batch)

        return self._pipelines.get(("unclip", spec, self.device), load)

    def reimagine_xl(self, spec: str, image_encoder: str = "") -> XlVariations:
        """A Reimagine XL runner: an SDXL base and the bigG vision tower, loaded once and kept."""

        def load() -> XlVariations:
            from diffusers import StableDiffusionXLPipeline

            from ..clip_vision import load_vision_tower

            tower = load_vision_tower(image_encoder, CLIP_VISION_FOLDERS, dtype=self._dtype())
            tower.model = place_module(tower.model, self.device, self.memory)
            check_embedding_size(tower.embedding_size, pooled_size(spec))  # before the large load
            pipe = load_pipeline(StableDiffusionXLPipeline, spec, dtype=self._dtype())
            place_pipeline(pipe, self.device, self.memory)
            pipe.set_progress_bar_config(disable=True)
            return XlVariations(pipe, tower, model_name(spec), max_batch=self.max_batch)

        return self._pipelines.get(("reimagine-xl", spec, image_encoder, self.device), load)

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
        if model_engine(values["model"]) == XL_ENGINE:
            runner = self.reimagine_xl(values["model"], values["image_encoder"])
        else:
            runner = self.unclip(values["model"])
        references = [Reference(image, weight) for image, weight in images]
        job = runner(references, values, progress=progress, should_stop=should_stop)
        folder = job_folder(self.out_dir, VARIATIONS_FOLDER)
        paths = [save_png(g.image, g.infotext, folder, g.seed) for g in job.images] if save else []
        return job, paths

    def relay(self, base: str | None, refiner: str | None):
        """An SDXL base + refiner relay (refiner sharing the base's text encoder 2 and VAE when identical)."""
        from .sdxl_loading import load_sdxl_relay

        def load():
            return load_sdxl_relay(
                base, refiner, dtype=self._dtype(), device=self.device, memory=self.memory, max_batch=self.max_batch
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
        return job, self._save(job.all_images(), SDXL_FOLDER)

    def refine(
        self,
        image: InputImage,
        refiner_values: dict[str, Any],
        seed: int = -1,
        progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ):
        """Refine an existing image with the SDXL refiner (pixel bridge through the refiner's VAE).

        A stop ends the refiner at its next step; the image as it is then is kept and saved (`job.interrupted`).
        """
        refiner_values = REFINER.validate({**refiner_values, "enabled": True, "refiner_mode": "refine"})
        relay = self.relay(None, refiner_values["refiner"])
        prompt = refiner_values["refiner_prompt"] or None
        negative = refiner_values["refiner_negative_prompt"] or None
        job = relay.refine_image(
            image,
            refiner_values,
            seed,
            prompt=prompt,
            negative_prompt=negative,
            progress=progress,
            should_stop=should_stop,
        )
        return job, self._save(job.all_images(), REFINED_FOLDER)

    def _save(self, images, folder: str) -> list[Path]:
        """Save final images, each kept base image under its final image's number (`-base` suffix)."""
        target = job_folder(self.out_dir, folder)
        paths: list[Path] = []
        number = next_index(target)
        for image in images:
            if image.label == "final" and paths:
                number += 1
            suffix = "" if image.label == "final" else image.label
            paths.append(save_png(image.image, image.infotext, target, image.seed, suffix, index=number))
        return paths


def supported_dtypes(device: str) -> tuple[str, ...]:
    """The DTYPES that `device` computes in: float16 needs a GPU; bfloat16 works on the CPU and on recent GPUs."""
    try:
        kind = torch.device(device).type
    except RuntimeError:  # not a device name: torch says so when the model moves there
        return DTYPES
    if kind == "cpu":
        return ("float32", "bfloat16")
    if kind == "mps":
        return ("float32", "float16")
    if kind == "cuda" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        return ("float32", "float16")
    return DTYPES


def pick_dtype(name: str | None, device: str) -> torch.dtype:
    """The torch dtype to load pipelines in on `device`: `name` when the device supports it, else ParamError.

    None: the automatic choice, float16 on CUDA and float32 elsewhere.
    """
    if name is None:
        auto_device, auto_dtype = default_device()
        return auto_dtype if torch.device(device).type == torch.device(auto_device).type else torch.float32
    allowed = supported_dtypes(device)
    if name not in allowed:
        note = "; float16 needs a GPU" if name == "float16" else ""
        raise ParamError("dtype", name, f"one of {', '.join(allowed)} on {device}{note}")
    return getattr(torch, name)


def _quiet_library_warnings() -> None:
    """transformers warns about optional torchvision on every processor; the PIL path it falls back to is fine."""
    from transformers.utils import logging

    logging.set_verbosity_error()
