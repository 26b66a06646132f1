"""Stable unCLIP 2.x single-file checkpoints (the original LDM layout the WebUI loads) as a diffusers pipeline, offline.

diffusers' `from_single_file` cannot build a StableUnCLIPImg2ImgPipeline and would fetch configs from the Hub; here
every config is derived from tensor shapes (so tiny test checkpoints load too), diffusers' own converters do the UNet,
VAE and text tower, and only the OpenCLIP image tower and the noise-augmentation statistics are mapped here.
Head counts are not visible in shapes: they come from `Heads`, else the `.yaml` beside the checkpoint (WebUI
convention) and `open_clip_configs/<arch>.json` beside it, else the values of the real SD 2.x / ViT-H-14 models.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import checkpoints
from ..errors import ModelNotAvailableError

UNET = "model.diffusion_model."
VAE = "first_stage_model."
TEXT = "cond_stage_model.model."
IMAGE = "embedder.model.visual."
NORMALIZER = "noise_augmentor."
OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

# Tensors of an LDM unCLIP file that the diffusers pipeline has no use for: ldm's precomputed diffusion schedules
# (diffusers recomputes them from the scheduler configs), the image embedder's text tower (ldm deletes only its
# `transformer`; the rest is dead weight), CLIP's logit scale and the text projection (SD 2.x conditions on hidden
# states, not on the pooled projection) and EMA copies (the non-EMA weights are used).
UNUSED = re.compile(
    r"^(noise_augmentor\.)?(betas|alphas_cumprod(_prev)?|sqrt_(recip(m1)?_)?alphas_cumprod|sqrt_one_minus_alphas_cumprod"
    r"|log_one_minus_alphas_cumprod|posterior_(variance|log_variance_clipped|mean_coef[12]))$"
    r"|^embedder\.model\.(ln_final\.(weight|bias)|logit_scale|positional_embedding|text_projection"
    r"|token_embedding\.weight|transformer\..*)$"
    r"|^cond_stage_model\.model\.(logit_scale|text_projection)$"
    r"|^model_ema\."
)


@dataclass(frozen=True)
class Heads:
    """Attention head settings that tensor shapes cannot reveal; None: `.yaml` beside the file, else SD 2.x values."""

    unet_head_channels: int | None = None
    text: int | None = None
    vision: int | None = None


def load_unclip_single_file(
    path: str | Path,
    tokenizer: str | Path | None = None,
    heads: Heads | None = None,
    dtype: torch.dtype = torch.float32,
):
    """A StableUnCLIPImg2ImgPipeline from an LDM-layout `.safetensors`/`.ckpt` unCLIP checkpoint, without the Hub."""
    from diffusers import StableUnCLIPImg2ImgPipeline

    path = Path(path).expanduser()
    state = read_state_dict(path)
    _require_unclip(path, state)
    yaml_config = _read_yaml(path.with_suffix(".yaml"))
    heads = _resolve_heads(heads or _open_clip_heads(path, yaml_config), yaml_config, state)
    used: set[str] = set()
    pipe = StableUnCLIPImg2ImgPipeline(
        feature_extractor=None,
        image_encoder=None,
        image_normalizer=build_normalizer(state, used, yaml_config),
        image_noising_scheduler=_image_noising_scheduler(),
        tokenizer=load_tokenizer(path, tokenizer, context_length=state[TEXT + "positional_embedding"].shape[0]),
        text_encoder=build_text_encoder(state, used, heads.text),
        unet=build_unet(state, used, heads.unet_head_channels),
        scheduler=_scheduler(yaml_config),
        vae=build_vae(state, used, yaml_config),
    )
    image_encoder = build_image_encoder(state, used, heads.vision)
    pipe.register_modules(image_encoder=image_encoder, feature_extractor=_feature_extractor(image_encoder))
    _check_all_used(path, state, used)
    # .to(float32) is a no-op that only makes diffusers warn about fp32-pinned modules.
    return pipe if dtype == torch.float32 else pipe.to(dtype=dtype)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors file, or of a .ckpt via torch's weights-only unpickler (never arbitrary code)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error, reported in one line
        raise ModelNotAvailableError(
            f"checkpoint {str(path)!r} could not be read as tensors: {_first_line(exc)}"
        ) from None
    while isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelNotAvailableError(f"checkpoint {str(path)!r} holds no state dict of tensors")
    return state


def _require_unclip(path: Path, state: dict[str, torch.Tensor]) -> None:
    shapes = {name: list(tensor.shape) for name, tensor in state.items()}
    kind = checkpoints.classify(shapes)
    if kind not in (checkpoints.UNCLIP_H, checkpoints.UNCLIP_L, checkpoints.UNCLIP):
        raise ModelNotAvailableError(
            f"checkpoint {str(path)!r} looks like a {kind!r} model, not Stable unCLIP: pass an unCLIP checkpoint "
            "(e.g. sd21-unclip-h.ckpt)"
        )
    if not any(name.startswith(IMAGE) for name in state):
        # unCLIP-L uses OpenAI CLIP's image tower under other names; only the OpenCLIP (unCLIP-H) layout is mapped.
        raise ModelNotAvailableError(
            f"checkpoint {str(path)!r}: only OpenCLIP-image-tower unCLIP (unCLIP-H) is supported"
        )


def _read_yaml(path: Path) -> dict[str, Any]:
    """The `model.params` of a WebUI-style config beside the checkpoint; {} when there is none."""
    if not path.is_file():
        return {}
    import yaml

    config = yaml.safe_load(path.read_text()) or {}
    return (config.get("model") or {}).get("params") or {}


def _open_clip_heads(path: Path, yaml_config: dict[str, Any]) -> Heads:
    """Text/vision heads from `open_clip_configs/<arch>.json` beside the checkpoint (custom open_clip archs)."""
    arch = ((yaml_config.get("cond_stage_config") or {}).get("params") or {}).get("arch")
    config_file = path.with_name("open_clip_configs") / f"{arch}.json"
    if not arch or not config_file.is_file():
        return Heads()
    import json

    config = json.loads(config_file.read_text())
    vision, text = config.get("vision_cfg") or {}, config.get("text_cfg") or {}
    vision_heads = vision["width"] // vision["head_width"] if "width" in vision and "head_width" in vision else None
    return Heads(text=text.get("heads"), vision=vision_heads)


def _resolve_heads(heads: Heads, yaml_config: dict[str, Any], state: dict[str, torch.Tensor]) -> Heads:
    unet_params = (yaml_config.get("unet_config") or {}).get("params") or {}
    unet_head_channels = heads.unet_head_channels or unet_params.get("num_head_channels")
    if not unet_head_channels and unet_params.get("num_heads"):
        unet_head_channels = state[UNET + "input_blocks.0.0.weight"].shape[0] // unet_params["num_heads"]
    text_width = state[TEXT + "ln_final.weight"].shape[0]
    vision_width = state[IMAGE + "ln_pre.weight"].shape[0]
    return Heads(
        unet_head_channels=unet_head_channels or 64,  # SD 2.x
        text=heads.text or max(1, text_width // 64),  # OpenCLIP text towers use 64-wide heads
        vision=heads.vision or _vision_heads(vision_width),
    )


def _vision_heads(width: int) -> int:
    # OpenCLIP ViT-H-14 has 80-wide heads (1280 / 16); ViT-L/B and most others 64.
    if width % 80 == 0 and width >= 1280:
        return width // 80
    return max(1, width // 64)


def _take(state: dict[str, torch.Tensor], used: set[str], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under `prefix` (prefix stripped), marked as used."""
    taken = {name[len(prefix) :]: tensor for name, tensor in state.items() if name.startswith(prefix)}
    used.update(prefix + name for name in taken)
    return taken


def _check_all_used(path: Path, state: dict[str, torch.Tensor], used: set[str]) -> None:
    # A leftover tensor means an architecture variant this converter does not understand: fail instead of
    # silently producing a pipeline that differs from the WebUI's.
    left = sorted(name for name in state if name not in used and not UNUSED.match(name))
    if left:
        raise ModelNotAvailableError(
            f"checkpoint {str(path)!r}: {len(left)} tensors this unCLIP converter does not know, e.g. {left[:3]}"
        )


def unet_ldm_params(state: dict[str, torch.Tensor], head_channels: int) -> dict[str, Any]:
    """ldm `UNetModel` parameters read from tensor shapes (what the original .yaml would say)."""
    unet = {name[len(UNET) :]: tensor for name, tensor in state.items() if name.startswith(UNET)}
    model_channels = unet["input_blocks.0.0.weight"].shape[0]
    level, levels, res_blocks, attention, depth = 0, [], 0, set(), 1
    block = 1
    while f"input_blocks.{block}.0.op.weight" in unet or f"input_blocks.{block}.0.in_layers.0.weight" in unet:
        if f"input_blocks.{block}.0.op.weight" in unet:
            level += 1
        else:
            if level == len(levels):
                levels.append(unet[f"input_blocks.{block}.0.out_layers.3.weight"].shape[0] // model_channels)
            res_blocks += level == 0
            if f"input_blocks.{block}.1.proj_in.weight" in unet:
                attention.add(2**level)
                prefix = f"input_blocks.{block}.1.transformer_blocks."
                depth = 1 + max(int(n[len(prefix) :].split(".")[0]) for n in unet if n.startswith(prefix))
        block += 1
    proj_in = next(t for n, t in unet.items() if n.endswith(".proj_in.weight"))
    params = {
        "in_channels": unet["input_blocks.0.0.weight"].shape[1],
        "out_channels": unet["out.2.weight"].shape[0],
        "model_channels": model_channels,
        "channel_mult": levels,
        "num_res_blocks": res_blocks,
        "attention_resolutions": sorted(attention),
        "num_head_channels": head_channels,
        "transformer_depth": depth,
        "context_dim": next(t for n, t in unet.items() if n.endswith("attn2.to_k.weight")).shape[1],
        "use_linear_in_transformer": proj_in.ndim == 2,
    }
    if "label_emb.0.0.weight" in unet:
        params |= {"num_classes": "sequential", "adm_in_channels": unet["label_emb.0.0.weight"].shape[1]}
    return params


def vae_ldm_ddconfig(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """ldm autoencoder `ddconfig` read from tensor shapes."""
    vae = {name[len(VAE) :]: tensor for name, tensor in state.items() if name.startswith(VAE)}
    ch = vae["encoder.conv_in.weight"].shape[0]
    levels = 1 + max(int(n.split(".")[2]) for n in vae if n.startswith("encoder.down."))
    blocks = 1 + max(int(n.split(".")[4]) for n in vae if n.startswith("encoder.down.0.block."))
    return {
        "ch": ch,
        "ch_mult": [vae[f"encoder.down.{i}.block.0.conv2.weight"].shape[0] // ch for i in range(levels)],
        "num_res_blocks": blocks,
        "in_channels": vae["encoder.conv_in.weight"].shape[1],
        "out_ch": vae["decoder.conv_out.weight"].shape[0],
        "z_channels": vae["decoder.conv_in.weight"].shape[1],
    }


def _original_config(state: dict[str, torch.Tensor], head_channels: int, scale_factor: float) -> dict[str, Any]:
    """The slice of an ldm .yaml that diffusers' config converters read."""
    return {
        "model": {
            "params": {
                "scale_factor": scale_factor,
                "unet_config": {"params": unet_ldm_params(state, head_channels)},
                "first_stage_config": {"params": {"ddconfig": vae_ldm_ddconfig(state)}},
            }
        }
    }


def build_unet(state: dict[str, torch.Tensor], used: set[str], head_channels: int):
    """The UNet (label_emb -> class_embedding, "projection"), converted by diffusers."""
    from diffusers import UNet2DConditionModel
    from diffusers.loaders import single_file_utils as sfu

    original = _original_config(state, head_channels, 0.18215)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # image_size is deprecated but the only way to skip Hub-based model sniffing
        config = sfu.create_unet_diffusers_config_from_ldm(original, state, image_size=768)
    # SD 2.x 768-v models need fp32 attention scores in fp16 (diffusers sets this for every v2 model too).
    config["upcast_attention"] = True
    unet = UNet2DConditionModel(**config)
    _take(state, used, UNET)
    _load(unet, sfu.convert_ldm_unet_checkpoint(state, unet.config), "UNet")
    return unet


def build_vae(state: dict[str, torch.Tensor], used: set[str], yaml_config: dict[str, Any]):
    """The KL autoencoder, converted by diffusers."""
    from diffusers import AutoencoderKL
    from diffusers.loaders import single_file_utils as sfu

    scale_factor = float(yaml_config.get("scale_factor", 0.18215))
    original = _original_config(state, 64, scale_factor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = sfu.create_vae_diffusers_config_from_ldm(original, state, image_size=768)
    vae = AutoencoderKL(**config)
    _take(state, used, VAE)
    _load(vae, sfu.convert_ldm_vae_checkpoint(state, vae.config), "VAE")
    return vae


def build_text_encoder(state: dict[str, torch.Tensor], used: set[str], heads: int):
    """The OpenCLIP text tower without its last layer: SD 2.x conditions on the penultimate layer (+ ln_final)."""
    from diffusers.loaders import single_file_utils as sfu
    from transformers import CLIPTextConfig, CLIPTextModel

    tower = _take(state, used, TEXT)
    layers = _count(tower, "transformer.resblocks.")
    last = f"transformer.resblocks.{layers - 1}."
    width = tower["ln_final.weight"].shape[0]
    vocab = tower["token_embedding.weight"].shape[0]
    config = CLIPTextConfig(
        vocab_size=vocab,
        hidden_size=width,
        intermediate_size=tower["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        projection_dim=tower["text_projection"].shape[1] if "text_projection" in tower else width,
        num_hidden_layers=layers - 1,
        num_attention_heads=heads,
        max_position_embeddings=tower["positional_embedding"].shape[0],
        hidden_act="gelu",
        layer_norm_eps=1e-5,
        bos_token_id=vocab - 2,  # CLIP's BPE: <|startoftext|>, <|endoftext|> are the last two ids
        eos_token_id=vocab - 1,
        pad_token_id=0,
    )
    model = CLIPTextModel(config)
    kept = {TEXT + n: t for n, t in tower.items() if not n.startswith(last)}
    converted = sfu.convert_open_clip_checkpoint(model, kept)
    # transformers >= 5.6 flattened CLIPTextModel: its keys lost the `text_model.` prefix.
    if not hasattr(model, "text_model"):
        converted = {k.removeprefix("text_model."): v for k, v in converted.items()}
    converted.pop("text_projection.weight", None)
    _load(model, converted, "text encoder")
    return model


def build_image_encoder(state: dict[str, torch.Tensor], used: set[str], heads: int):
    """The OpenCLIP ViT image tower as a transformers CLIPVisionModelWithProjection (diffusers has no converter)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    tower = _take(state, used, IMAGE)
    width, _, patch, _ = tower["conv1.weight"].shape
    grid = int(round((tower["positional_embedding"].shape[0] - 1) ** 0.5))
    config = CLIPVisionConfig(
        hidden_size=width,
        intermediate_size=tower["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        projection_dim=tower["proj"].shape[1],
        num_hidden_layers=_count(tower, "transformer.resblocks."),
        num_attention_heads=heads,
        image_size=grid * patch,
        patch_size=patch,
        hidden_act="gelu",  # OpenCLIP's nn.GELU (exact), not OpenAI's quick_gelu
        layer_norm_eps=1e-5,
    )
    model = CLIPVisionModelWithProjection(config)
    _load(model, convert_open_clip_vision(tower), "image encoder")
    return model


def convert_open_clip_vision(tower: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """OpenCLIP `visual.*` tensors (prefix stripped) -> CLIPVisionModelWithProjection names."""
    out = {
        "vision_model.embeddings.patch_embedding.weight": tower["conv1.weight"],
        "vision_model.embeddings.class_embedding": tower["class_embedding"],
        "vision_model.embeddings.position_embedding.weight": tower["positional_embedding"],
        "vision_model.pre_layrnorm.weight": tower["ln_pre.weight"],
        "vision_model.pre_layrnorm.bias": tower["ln_pre.bias"],
        "vision_model.post_layernorm.weight": tower["ln_post.weight"],
        "vision_model.post_layernorm.bias": tower["ln_post.bias"],
        # OpenCLIP multiplies `x @ proj`; nn.Linear stores the transpose.
        "visual_projection.weight": tower["proj"].T.contiguous(),
    }
    names = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
    names["attn.out_proj"] = "self_attn.out_proj"
    for i in range(_count(tower, "transformer.resblocks.")):
        old, new = f"transformer.resblocks.{i}.", f"vision_model.encoder.layers.{i}."
        for part in ("weight", "bias"):
            for a, b in names.items():
                out[f"{new}{b}.{part}"] = tower[f"{old}{a}.{part}"]
            # nn.MultiheadAttention packs q, k, v in one projection.
            for name, chunk in zip("qkv", tower[f"{old}attn.in_proj_{part}"].chunk(3), strict=True):
                out[f"{new}self_attn.{name}_proj.{part}"] = chunk.contiguous()
    return out


def build_normalizer(state: dict[str, torch.Tensor], used: set[str], yaml_config: dict[str, Any]):
    """unCLIP's image-embedding statistics: from the file, else the config's clip_stats_path, else identity."""
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer

    dim = state[IMAGE + "proj"].shape[1]
    normalizer = StableUnCLIPImageNormalizer(embedding_dim=dim)
    stats = _take(state, used, NORMALIZER + "data_")
    if not stats:
        # ldm registers data_mean/data_std as non-persistent buffers: WebUI files don't carry them, the .yaml
        # names the statistics file (the released sd21-unclip configs name none: zero mean, unit std).
        stats = _clip_stats(yaml_config)
    if stats:
        normalizer.mean.data = stats["mean"].reshape(1, dim).float()
        normalizer.std.data = stats["std"].reshape(1, dim).float()
    return normalizer


def _clip_stats(yaml_config: dict[str, Any]) -> dict[str, torch.Tensor]:
    stats_path = ((yaml_config.get("noise_aug_config") or {}).get("params") or {}).get("clip_stats_path")
    if not stats_path or not Path(stats_path).is_file():
        return {}
    mean, std = torch.load(stats_path, map_location="cpu", weights_only=True)
    return {"mean": mean, "std": std}


def load_tokenizer(checkpoint: Path, folder: str | Path | None = None, context_length: int = 77):
    """The CLIP BPE tokenizer: `folder`, else `<name>_tokenizer/` or `tokenizer/` beside the checkpoint."""
    from transformers import CLIPTokenizer

    candidates = [Path(folder).expanduser()] if folder else []
    candidates += [checkpoint.with_name(checkpoint.stem + "_tokenizer"), checkpoint.with_name("tokenizer")]
    for candidate in candidates:
        if (candidate / "vocab.json").is_file():
            tokenizer = CLIPTokenizer.from_pretrained(str(candidate))
            # A bare vocab.json + merges.txt folder has no model_max_length: use the text tower's context.
            tokenizer.model_max_length = min(tokenizer.model_max_length, context_length)
            # open_clip pads with id 0 ("!" in CLIP's vocabulary), as the WebUI does; the UNet sees the padding.
            if tokenizer.get_vocab().get("!") == 0:
                tokenizer.pad_token = "!"
            return tokenizer
    where = f"{candidates[0]} has no vocab.json; " if folder else ""
    raise ModelNotAvailableError(
        f"checkpoint {str(checkpoint)!r}: {where}no CLIP tokenizer found (it cannot be downloaded here): copy the "
        f"`tokenizer` folder of stabilityai/stable-diffusion-2-1-unclip to {candidates[-2]}"
    )


def _scheduler(yaml_config: dict[str, Any]):
    from diffusers import DDIMScheduler

    # The released SD 2.1 unCLIP models are v-prediction (ldm `parameterization: v`).
    prediction = "epsilon" if yaml_config.get("parameterization") == "eps" else "v_prediction"
    return DDIMScheduler(
        beta_schedule="scaled_linear",
        beta_start=float(yaml_config.get("linear_start", 0.00085)),
        beta_end=float(yaml_config.get("linear_end", 0.012)),
        prediction_type=prediction,
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        timestep_spacing="leading",
    )


def _image_noising_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(beta_schedule="squaredcos_cap_v2", num_train_timesteps=1000)


def _feature_extractor(image_encoder):
    from transformers import CLIPImageProcessor

    size = image_encoder.config.image_size
    return CLIPImageProcessor(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        image_mean=OPENAI_CLIP_MEAN,
        image_std=OPENAI_CLIP_STD,
    )


def _count(tensors: dict[str, torch.Tensor], prefix: str) -> int:
    """How many numbered blocks `prefix<N>.` there are."""
    return 1 + max(int(n[len(prefix) :].split(".")[0]) for n in tensors if n.startswith(prefix))


def _load(model: torch.nn.Module, tensors: dict[str, torch.Tensor], what: str) -> None:
    # strict: a missing or surplus tensor means the derived config is wrong, which must not pass silently.
    try:
        missing, unexpected = model.load_state_dict(tensors, strict=False)
    except RuntimeError as exc:  # size mismatches: torch's message spans many lines
        raise ModelNotAvailableError(f"unCLIP {what}: converted tensors do not fit ({_first_line(exc)})") from None
    missing = [name for name in missing if not name.endswith("position_ids")]
    if missing or unexpected:
        raise ModelNotAvailableError(
            f"unCLIP {what}: converted tensors do not fit (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:200] if lines else type(exc).__name__
