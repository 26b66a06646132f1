"""Loading diffusers pipelines from a Hugging Face id, a diffusers folder or a single-file checkpoint."""

from __future__ import annotations

import json
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from ..checkpoints import (
    REFINER_KINDS,
    SD,
    SDXL_BASE,
    SDXL_REFINER,
    UNCLIP,
    UNCLIP_KINDS,
    UNKNOWN,
    describe_kind,
    inspect_checkpoint,
    safetensors_problem,
)
from ..errors import ModelNotAvailableError, ReimagineError

SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt")
HOW_TO_PROVIDE = (
    "download it on a connected machine (`hf download {model}`) and copy the cache, pass a local "
    "diffusers folder or a .safetensors file, or try the tiny offline models (`python -m sd_reimagine "
    "make-tiny-models DIR`)"
)
# What each pipeline the host loads can be built from, and how a refusal says so.
NEEDS = {
    "StableUnCLIPImg2ImgPipeline": (
        UNCLIP_KINDS,
        "Reimagine needs a Stable unCLIP 2.1 model (stabilityai/stable-diffusion-2-1-unclip or -small, a diffusers "
        "folder of one, or an sd21-unclip-h .safetensors/.ckpt file), or an SDXL base for Reimagine XL",
    ),
    "StableDiffusionXLPipeline": (
        (SDXL_BASE,),
        "the SDXL base needs an SDXL base model (stabilityai/stable-diffusion-xl-base-1.0, a diffusers folder of "
        "one, or a .safetensors file)",
    ),
    "StableDiffusionXLImg2ImgPipeline": (
        REFINER_KINDS,
        "the SDXL refiner needs an SDXL refiner or base model (stabilityai/stable-diffusion-xl-refiner-1.0, a "
        "diffusers folder of one, or a .safetensors file)",
    ),
}
# The `_class_name` of a diffusers folder's model_index.json -> the kind of model it holds.
PIPELINE_KINDS = {
    "StableUnCLIPImg2ImgPipeline": UNCLIP,
    "StableDiffusionXLPipeline": SDXL_BASE,
    "StableDiffusionXLImg2ImgPipeline": SDXL_REFINER,
    "StableDiffusionPipeline": SD,
    "StableDiffusionImg2ImgPipeline": SD,
}


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
    check_model_kind(pipeline_class.__name__, spec)
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
        raise ModelNotAvailableError(_not_loaded(spec, path, exc)) from None


def _not_loaded(spec: str, path: Path, exc: Exception) -> str:
    """Why a model did not load and how to provide it; a Hub id missing from the local cache says just that."""
    if not path.exists() and _cached_model_index(spec) is None:
        reason = "it is not in the local Hugging Face cache and could not be downloaded"
    else:
        reason = _first_line(exc)
    return f"model {spec!r} could not be loaded ({reason}); " + HOW_TO_PROVIDE.format(model=spec)


def check_model_kind(pipeline_name: str, spec: str) -> None:
    """Refuse, before anything loads, a model of another kind than `pipeline_name` needs: one line naming both."""
    if pipeline_name not in NEEDS:
        return
    kinds, needed = NEEDS[pipeline_name]
    path = Path(spec).expanduser()
    kind, found = single_file_kind(path) if path.is_file() else pipeline_kind(spec, path)
    if found is not None and kind not in kinds:
        raise ModelNotAvailableError(f"model {spec!r}: {found}; {needed}")


def single_file_kind(path: Path) -> tuple[str, str]:
    """(kind, what it is) of a checkpoint file, from its header alone (a .ckpt is never unpickled here)."""
    if path.suffix == ".safetensors" and (problem := safetensors_problem(path)):
        return UNKNOWN, f"not a readable .safetensors file ({problem})"
    if path.suffix == ".ckpt" and not zipfile.is_zipfile(path):
        return UNKNOWN, "not a readable .ckpt file (a torch checkpoint is a zip archive; this file is not one)"
    kind = inspect_checkpoint(path).kind
    return kind, _describe(kind, "checkpoint")


def pipeline_kind(spec: str, path: Path) -> tuple[str, str | None]:
    """(kind, what it is) of a diffusers folder, or of a Hub id already in the cache; None: not known yet."""
    if path.is_dir():
        index = path / "model_index.json"
        if not index.is_file():
            return UNKNOWN, "not a diffusers pipeline folder (no model_index.json)"
    else:
        index = _cached_model_index(spec)
        if index is None:
            return UNKNOWN, None  # not downloaded yet: diffusers fetches it, and its own errors are reported then
    try:
        class_name = str(json.loads(index.read_text(encoding="utf-8"))["_class_name"])
    except (OSError, ValueError, KeyError, TypeError):
        return UNKNOWN, "a folder whose model_index.json cannot be read"
    kind = PIPELINE_KINDS.get(class_name, UNKNOWN)
    found = f"this is a {class_name} pipeline" if kind == UNKNOWN else f"{_describe(kind, 'pipeline')} ({class_name})"
    return kind, found


def _cached_model_index(repo_id: str) -> Path | None:
    """model_index.json of a Hub repo when the local cache has it (no network)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(repo_id, "model_index.json")
    except ValueError:  # not a valid repo id: diffusers reports it
        return None
    return Path(cached) if isinstance(cached, str) else None


def _describe(kind: str, what: str) -> str:
    """'this is an SDXL base pipeline', or what an unrecognised checkpoint lacks."""
    if kind == UNKNOWN:
        return "it holds no weights of a known Stable Diffusion model"
    name = describe_kind(kind)
    article = "an" if name.startswith(("SD", "A", "E", "I", "O", "U")) else "a"
    return f"this is {article} {name} {what}"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__  # whole: a cut line loses the words that explain it


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
