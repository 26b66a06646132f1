"""The OpenCLIP ViT-bigG/14 vision tower of Reimagine XL, from a Hugging Face id or a `clip_vision_g.safetensors`.

Where it comes from, in this order: the job's `image_encoder` value (a `.safetensors` file, a transformers folder
or a Hugging Face id); empty: `clip_vision_g.safetensors` in one of the host's folders (the WebUI's
`models/clip_vision`), else the Hugging Face id `laion/CLIP-ViT-bigG-14-laion2B-39B-b160k` through huggingface_hub.
A `.safetensors` file holds a transformers `CLIPVisionModelWithProjection` state dict (`vision_model.*`,
`visual_projection.weight`), as ComfyUI's and the WebUI extensions' `clip_vision_g.safetensors` do; its config is
read from the tensor shapes (bigG's when they are bigG's).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import ModelNotAvailableError, ParamError
from .images import InputImage
from .reimagine_xl import BIGG_ID, CLIP_VISION_G_FILE, clip_pixels

CONFIG_METADATA = "reimagine_clip_vision_config"  # the project's tiny test towers carry their config here
BIGG_HIDDEN, BIGG_HEADS = 1664, 16
_LAYER = re.compile(r"^vision_model\.encoder\.layers\.(\d+)\.")
HOW_TO_PROVIDE = (
    "put {file} (the OpenCLIP ViT-bigG/14 vision tower, transformers layout) into {folders}, set the image encoder "
    "to a .safetensors file or folder, or go online once so that huggingface_hub caches {hub_id}"
)


@dataclass
class VisionTower:
    """A loaded CLIP vision tower with projection, and the embeddings it has computed (by image digest)."""

    model: torch.nn.Module
    name: str
    cache: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def image_size(self) -> int:
        return int(self.model.config.image_size)

    @property
    def embedding_size(self) -> int:
        return int(self.model.config.projection_dim)

    @torch.no_grad()
    def embed(self, image: InputImage) -> torch.Tensor:
        """The (1, projection_dim) image embedding of one reference, computed once per picture."""
        if image.digest not in self.cache:
            parameter = next(self.model.parameters())
            pixels = clip_pixels(image.image, self.image_size).to(parameter.device, parameter.dtype)
            self.cache[image.digest] = self.model(pixel_values=pixels).image_embeds.float()
            while len(self.cache) > 32:
                self.cache.pop(next(iter(self.cache)))
        return self.cache[image.digest]


def find_image_encoder(spec: str, folders: Sequence[str | Path] = ()) -> str:
    """What to load: `spec` when given, else `clip_vision_g.safetensors` in `folders`, else the Hub id."""
    if spec.strip():
        return spec.strip()
    for folder in folders:
        candidate = Path(folder) / CLIP_VISION_G_FILE
        if candidate.is_file():
            return str(candidate)
    return BIGG_ID


def load_vision_tower(
    spec: str,
    folders: Sequence[str | Path] = (),
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> VisionTower:
    """Load the tower `find_image_encoder` picks; a clear ModelNotAvailableError naming the file and the folders."""
    source = find_image_encoder(spec, folders)
    path = Path(source).expanduser()
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise ModelNotAvailableError(f"image_encoder {source!r}: no such file; " + _how_to(folders))
        model = tower_from_file(path)
    else:
        model = tower_from_pretrained(source, folders)
    model = model.to(device=device, dtype=dtype).eval().requires_grad_(False)
    return VisionTower(model, path.stem if path.suffix else path.name)


def tower_from_pretrained(source: str, folders: Sequence[str | Path]) -> torch.nn.Module:
    """A transformers folder or Hub id (a full CLIP repo gives its vision half)."""
    from transformers import CLIPVisionModelWithProjection

    try:
        return CLIPVisionModelWithProjection.from_pretrained(source)
    except (OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ModelNotAvailableError(
            f"image_encoder {source!r} could not be loaded ({first}); " + _how_to(folders)
        ) from None


def tower_from_file(path: Path) -> torch.nn.Module:
    """A CLIPVisionModelWithProjection built from the shapes in a `.safetensors` file, weights loaded."""
    from safetensors import safe_open
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    try:
        with safe_open(str(path), framework="pt") as file:
            metadata = file.metadata() or {}
            state = {name: file.get_tensor(name) for name in file.keys()}
    except (OSError, ValueError, RuntimeError) as exc:
        raise ParamError("image_encoder", str(path), f"a readable .safetensors file ({exc})") from None
    config = CLIPVisionConfig(**vision_config(state, metadata, path))
    model = CLIPVisionModelWithProjection(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [name for name in missing if not name.endswith("position_ids")]
    if missing or unexpected:
        raise ParamError("image_encoder", str(path), _layout_message(missing, unexpected))
    return model


def vision_config(state: dict[str, torch.Tensor], metadata: dict[str, str], path: Path) -> dict:
    """CLIPVisionConfig arguments read from tensor shapes (heads: bigG's 16, or the file's own metadata)."""
    needed = ("vision_model.embeddings.patch_embedding.weight", "vision_model.embeddings.position_embedding.weight")
    if any(name not in state for name in (*needed, "visual_projection.weight")):
        raise ParamError("image_encoder", str(path), _layout_message([n for n in needed if n not in state], []))
    patch = state[needed[0]]
    hidden, patch_size = patch.shape[0], patch.shape[-1]
    positions = state[needed[1]].shape[0] - 1
    layers = {int(m.group(1)) for name in state if (m := _LAYER.match(name))}
    config = {
        "hidden_size": hidden,
        "patch_size": patch_size,
        "image_size": int(round(positions**0.5)) * patch_size,
        "num_hidden_layers": len(layers),
        "intermediate_size": state["vision_model.encoder.layers.0.mlp.fc1.weight"].shape[0],
        "projection_dim": state["visual_projection.weight"].shape[0],
        "num_attention_heads": BIGG_HEADS if hidden == BIGG_HIDDEN else max(1, hidden // 64),
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-5,
    }
    if CONFIG_METADATA in metadata:
        config.update(json.loads(metadata[CONFIG_METADATA]))
    return config


def _layout_message(missing: Sequence[str], unexpected: Sequence[str]) -> str:
    shown = ", ".join([*list(missing)[:2], *list(unexpected)[:2]])
    return (
        "a CLIP vision tower in the transformers layout (vision_model.*, visual_projection.weight), as "
        f"{CLIP_VISION_G_FILE} is; this file differs ({shown})"
    )


def _how_to(folders: Sequence[str | Path]) -> str:
    where = ", ".join(str(f) for f in folders) or "the folder you pass"
    return HOW_TO_PROVIDE.format(file=CLIP_VISION_G_FILE, folders=where, hub_id=BIGG_ID)
