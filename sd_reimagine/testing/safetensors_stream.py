"""A `.safetensors` file written tensor by tensor: real-size test checkpoints are built with one tensor in memory."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

_DTYPES = {torch.float16: "F16", torch.int64: "I64", torch.float32: "F32"}
Spec = tuple[torch.Size, torch.dtype]


def write_streamed_safetensors(
    path: Path, specs: dict[str, Spec], make: Callable[[str, Spec], torch.Tensor], metadata: dict[str, str]
) -> Path:
    """A `.safetensors` file written tensor by tensor (the header first, from the shapes): one tensor in memory."""
    header: dict[str, object] = {"__metadata__": metadata}
    offset = 0
    for name, (shape, dtype) in specs.items():
        size = int(torch.Size(shape).numel()) * torch.empty((), dtype=dtype).element_size()
        header[name] = {"dtype": _DTYPES[dtype], "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as handle:
        handle.write(len(encoded).to_bytes(8, "little"))
        handle.write(encoded)
        for name, spec in specs.items():
            tensor = make(name, spec)
            handle.write(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    partial.replace(path)
    return path
