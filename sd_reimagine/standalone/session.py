"""One object that both the CLI and the app use: loaded models, jobs, saving."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..images import InputImage
from ..mixing import Reference
from ..schema import REIMAGINE
from .models import PipelineCache, default_device, load_pipeline, model_name
from .output import save_png
from .unclip import UnclipVariations, VariationJob


class Session:
    """Keeps pipelines loaded between jobs and runs Reimagine (and SDXL) jobs."""

    def __init__(self, device: str | None = None, out_dir: Path | None = None, max_batch: int = 4):
        auto_device, auto_dtype = default_device()
        self.device = device or auto_device
        self.dtype = auto_dtype if self.device == auto_device else None
        self.out_dir = Path(out_dir) if out_dir else Path("outputs")
        self.max_batch = max_batch
        self._pipelines = PipelineCache(capacity=3)

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
        paths = []
        if save:
            folder = self.out_dir / "reimagine"
            paths = [save_png(g.image, g.infotext, folder, g.seed) for g in job.images]
        return job, paths
