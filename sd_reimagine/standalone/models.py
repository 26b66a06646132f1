"""Loading diffusers pipelines from a Hugging Face id, a diffusers folder or a single-file checkpoint."""

from __future__ import annotations

import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelNotAvailableError, ReimagineError

SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt")
HOW_TO_PROVIDE = (
    "download it on a connected machine (`huggingface-cli download {model}`) and copy the cache, pass a local "
    "diffusers folder or a .safetensors file, or try the tiny offline models (`python -m sd_reimagine "
    "make-tiny-models DIR`)"
)


def default_device() -> tuple[str, torch.dtype]:
    """CUDA in float16 when there is a GPU, else the CPU in float32."""
    if torch.cuda.is_available():
        return "cuda", torch.float16
    return "cpu", torch.float32


def model_name(spec: str) -> str:
    """Short name for infotext: folder or file stem, or the Hugging Face repo name."""
    path = Path(spec)
    return path.stem if path.suffix in SINGLE_FILE_SUFFIXES else path.name


def load_pipeline(pipeline_class, spec: str, dtype: torch.dtype = torch.float32, **components: Any):
    """Load `pipeline_class` from `spec`; a clear ModelNotAvailableError when it cannot be found or fetched."""
    with warnings.catch_warnings():
        # diffusers renames torch_dtype to dtype; older releases know only torch_dtype.
        warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
        return _load_pipeline(pipeline_class, spec, dtype, **components)


def _load_pipeline(pipeline_class, spec: str, dtype: torch.dtype, **components: Any):
    path = Path(spec).expanduser()
    try:
        if path.is_dir():
            return pipeline_class.from_pretrained(str(path), torch_dtype=dtype, **components)
        if path.is_file() and path.suffix in SINGLE_FILE_SUFFIXES:
            if pipeline_class.__name__ == "StableUnCLIPImg2ImgPipeline" and not components:
                # diffusers' from_single_file cannot build unCLIP (and would ask the Hub for configs).
                from .single_file import load_unclip_single_file

                return load_unclip_single_file(path, dtype=dtype)
            if not hasattr(pipeline_class, "from_single_file"):
                raise ModelNotAvailableError(
                    f"model {spec!r}: diffusers cannot read a single-file {pipeline_class.__name__} checkpoint; "
                    "pass the Hugging Face id or a diffusers folder (the WebUI host loads such files directly)"
                )
            # diffusers reads .ckpt with torch.load(weights_only=True): no arbitrary unpickling.
            return pipeline_class.from_single_file(str(path), torch_dtype=dtype, **components)
        if path.exists() or spec.startswith((".", "/", "~")) or path.suffix in SINGLE_FILE_SUFFIXES:
            raise ModelNotAvailableError(
                f"model {spec!r}: no diffusers folder or .safetensors/.ckpt file at that path; pass a diffusers "
                "folder, a checkpoint file or a Hugging Face id"
            )
        return pipeline_class.from_pretrained(spec, torch_dtype=dtype, **components)
    except ReimagineError:
        raise
    except (OSError, ValueError) as exc:
        raise ModelNotAvailableError(
            f"model {spec!r} could not be loaded ({_first_line(exc)}); " + HOW_TO_PROVIDE.format(model=spec)
        ) from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


class PipelineCache:
    """Keeps the most recently used pipelines loaded (least recently used dropped first)."""

    def __init__(self, capacity: int = 2):
        self.capacity = capacity
        self._pipes: OrderedDict[tuple, Any] = OrderedDict()

    def get(self, key: tuple, load):
        if key in self._pipes:
            self._pipes.move_to_end(key)
            return self._pipes[key]
        pipe = load()
        self._pipes[key] = pipe
        while len(self._pipes) > self.capacity:
            self._pipes.popitem(last=False)
        return pipe

    def clear(self) -> None:
        self._pipes.clear()
