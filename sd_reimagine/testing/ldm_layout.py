"""diffusers/transformers unCLIP components written as an original (ldm/OpenCLIP) single-file checkpoint names
them: how the test checkpoints for the single-file loader are made (tiny ones in tests, real-size ones in
benchmarks). Works on meta tensors too (names and shapes only)."""

from __future__ import annotations

import re

import torch


def _rename(name: str, rules: list[tuple[str, str]]) -> str:
    for pattern, replacement in rules:
        name = re.sub(pattern, replacement, name)
    return name


RESNET = [(r"\.norm1\.", ".in_layers.0."), (r"\.conv1\.", ".in_layers.2."), (r"\.time_emb_proj\.", ".emb_layers.1.")]
RESNET += [
    (r"\.norm2\.", ".out_layers.0."),
    (r"\.conv2\.", ".out_layers.3."),
    (r"\.conv_shortcut\.", ".skip_connection."),
]


def unet_to_ldm(unet) -> dict[str, torch.Tensor]:
    """diffusers UNet -> `model.diffusion_model.*`."""
    # ldm: each level is its resnets then the down/upsampler block; up levels have one resnet more.
    per_down, per_up = unet.config.layers_per_block + 1, unet.config.layers_per_block + 1
    attention = {i for i, t in enumerate(unet.config.up_block_types) if t.startswith("CrossAttn")}

    def block(m: re.Match) -> str:
        kind, b, part, j = m.group(1), int(m.group(2)), m.group(3), int(m.group(4))
        if kind == "down":
            index = 1 + b * per_down + (per_down - 1 if part == "downsamplers" else j)
            sub = {"resnets": "0", "attentions": "1", "downsamplers": "0.op"}[part]
            return f"input_blocks.{index}.{sub}"
        index = b * per_up + (per_up - 1 if part == "upsamplers" else j)
        sub = {"resnets": "0", "attentions": "1", "upsamplers": "2" if b in attention else "1"}[part]
        return f"output_blocks.{index}.{sub}"

    rules = [(r"^conv_in\.", "input_blocks.0.0."), (r"^conv_norm_out\.", "out.0."), (r"^conv_out\.", "out.2.")]
    rules += [(r"^time_embedding\.linear_1\.", "time_embed.0."), (r"^time_embedding\.linear_2\.", "time_embed.2.")]
    rules += [(r"^class_embedding\.linear_1\.", "label_emb.0.0."), (r"^class_embedding\.linear_2\.", "label_emb.0.2.")]
    rules += [(r"^mid_block\.resnets\.0\.", "middle_block.0."), (r"^mid_block\.attentions\.0\.", "middle_block.1.")]
    rules += [(r"^mid_block\.resnets\.1\.", "middle_block.2.")]
    out = {}
    for name, tensor in unet.state_dict().items():
        new = re.sub(r"^(down|up)_blocks\.(\d+)\.(resnets|attentions|downsamplers|upsamplers)\.(\d+)", block, name)
        new = _rename(re.sub(r"\.op\.conv\.", ".op.", new), rules)
        if re.match(r"^(input|output|middle)_block", new) and ".transformer_blocks." not in new:
            new = _rename(new, RESNET)
        out["model.diffusion_model." + new] = tensor
    return out


def vae_to_ldm(vae) -> dict[str, torch.Tensor]:
    """diffusers AutoencoderKL -> `first_stage_model.*` (1x1 convs for the mid-block attention)."""
    levels = len(vae.config.block_out_channels)
    rules = [
        (r"down_blocks\.(\d+)\.resnets\.", r"down.\1.block."),
        (r"down_blocks\.(\d+)\.downsamplers\.0\.", r"down.\1.downsample."),
    ]
    rules += [
        (r"mid_block\.resnets\.(\d)\.", lambda m: f"mid.block_{int(m.group(1)) + 1}."),
        (r"mid_block\.attentions\.0\.", "mid.attn_1."),
    ]
    rules += [(r"up_blocks\.(\d+)\.resnets\.", lambda m: f"up.{levels - 1 - int(m.group(1))}.block.")]
    rules += [(r"up_blocks\.(\d+)\.upsamplers\.0\.", lambda m: f"up.{levels - 1 - int(m.group(1))}.upsample.")]
    rules += [(r"conv_shortcut", "nin_shortcut"), (r"conv_norm_out", "norm_out"), (r"group_norm", "norm")]
    rules += [(r"to_q\.", "q."), (r"to_k\.", "k."), (r"to_v\.", "v."), (r"to_out\.0\.", "proj_out.")]
    out = {}
    for name, tensor in vae.state_dict().items():
        new = _rename(name, rules)
        if ".attn_1." in new and new.endswith(".weight") and tensor.ndim == 2:
            tensor = tensor[:, :, None, None]
        out["first_stage_model." + new] = tensor
    return out


def clip_layers_to_open_clip(state: dict[str, torch.Tensor], prefix: str, out_prefix: str) -> dict[str, torch.Tensor]:
    """HF CLIP encoder layers -> OpenCLIP resblocks (q, k, v packed into in_proj)."""
    rules = [(r"layer_norm1", "ln_1"), (r"layer_norm2", "ln_2"), (r"mlp\.fc1", "mlp.c_fc"), (r"mlp\.fc2", "mlp.c_proj")]
    rules += [(r"self_attn\.out_proj", "attn.out_proj")]
    out = {}
    for name, tensor in state.items():
        match = re.match(re.escape(prefix) + r"(\d+)\.(.*)$", name)
        if not match or re.search(r"[kv]_proj", name):
            continue
        block, rest = match.groups()
        head = f"{out_prefix}transformer.resblocks.{block}."
        if rest.startswith("self_attn.q_proj."):
            part = rest.rsplit(".", 1)[1]
            qkv = [state[f"{prefix}{block}.self_attn.{n}_proj.{part}"] for n in "qkv"]
            out[f"{head}attn.in_proj_{part}"] = torch.cat(qkv)
        else:
            out[head + _rename(rest, rules)] = tensor
    return out


def text_to_open_clip(text_encoder) -> dict[str, torch.Tensor]:
    """CLIPTextModel -> `cond_stage_model.model.*`, plus the last layer SD 2.x skips and a text projection."""
    state = {k.removeprefix("text_model."): v for k, v in text_encoder.state_dict().items()}
    prefix, layers = "cond_stage_model.model.", text_encoder.config.num_hidden_layers
    out = clip_layers_to_open_clip(state, "encoder.layers.", prefix)
    torch.manual_seed(1)
    for name, tensor in list(out.items()):
        if ".resblocks.0." in name:
            out[name.replace(".resblocks.0.", f".resblocks.{layers}.")] = torch.randn_like(tensor)
    width = text_encoder.config.hidden_size
    out |= {
        prefix + "token_embedding.weight": state["embeddings.token_embedding.weight"],
        prefix + "positional_embedding": state["embeddings.position_embedding.weight"],
        prefix + "ln_final.weight": state["final_layer_norm.weight"],
        prefix + "ln_final.bias": state["final_layer_norm.bias"],
        prefix + "text_projection": torch.randn(width, width),
        prefix + "logit_scale": torch.tensor(4.6),
    }
    return out


def vision_to_open_clip(image_encoder, text_width: int = 32) -> dict[str, torch.Tensor]:
    """CLIPVisionModelWithProjection -> `embedder.model.visual.*` (and the image embedder's unused text parts)."""
    state = image_encoder.state_dict()
    prefix = "embedder.model.visual."
    out = clip_layers_to_open_clip(state, "vision_model.encoder.layers.", prefix)
    out |= {
        prefix + "conv1.weight": state["vision_model.embeddings.patch_embedding.weight"],
        prefix + "class_embedding": state["vision_model.embeddings.class_embedding"],
        prefix + "positional_embedding": state["vision_model.embeddings.position_embedding.weight"],
        prefix + "ln_pre.weight": state["vision_model.pre_layrnorm.weight"],
        prefix + "ln_pre.bias": state["vision_model.pre_layrnorm.bias"],
        prefix + "ln_post.weight": state["vision_model.post_layernorm.weight"],
        prefix + "ln_post.bias": state["vision_model.post_layernorm.bias"],
        prefix + "proj": state["visual_projection.weight"].T.contiguous(),
        # classify() recognises unCLIP by the image embedder's (unused) text-tower final norm, as in real files.
        "embedder.model.ln_final.weight": torch.ones(text_width),
        "embedder.model.ln_final.bias": torch.zeros(text_width),
    }
    return out


def pipeline_to_ldm(pipe) -> dict[str, torch.Tensor]:
    """A diffusers StableUnCLIPImg2ImgPipeline as the tensors of an ldm unCLIP checkpoint."""
    state = unet_to_ldm(pipe.unet) | vae_to_ldm(pipe.vae)
    state |= text_to_open_clip(pipe.text_encoder) | vision_to_open_clip(pipe.image_encoder)
    state["noise_augmentor.data_mean"] = pipe.image_normalizer.mean.detach().clone()
    state["noise_augmentor.data_std"] = pipe.image_normalizer.std.detach().clone()
    state["betas"] = torch.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2  # ldm's precomputed schedule: unused
    return {name: tensor.detach().clone().contiguous() for name, tensor in state.items()}


def open_clip_to_vision(
    state: dict[str, torch.Tensor], prefix: str = "embedder.model.visual."
) -> dict[str, torch.Tensor]:
    """`<prefix>*` (OpenCLIP / OpenAI CLIP visual) -> CLIPVisionModelWithProjection names: the inverse of
    `vision_to_open_clip`, for an image tower built from a checkpoint independently of any host's converter."""
    rules = [(r"ln_1", "layer_norm1"), (r"ln_2", "layer_norm2"), (r"mlp\.c_fc", "mlp.fc1"), (r"mlp\.c_proj", "mlp.fc2")]
    rules += [(r"attn\.out_proj", "self_attn.out_proj")]
    fixed = {
        "conv1.weight": "vision_model.embeddings.patch_embedding.weight",
        "class_embedding": "vision_model.embeddings.class_embedding",
        "positional_embedding": "vision_model.embeddings.position_embedding.weight",
        "ln_pre.weight": "vision_model.pre_layrnorm.weight",
        "ln_pre.bias": "vision_model.pre_layrnorm.bias",
        "ln_post.weight": "vision_model.post_layernorm.weight",
        "ln_post.bias": "vision_model.post_layernorm.bias",
    }
    out = {}
    for name, tensor in state.items():
        if not name.startswith(prefix):
            continue
        rest = name[len(prefix) :]
        match = re.match(r"transformer\.resblocks\.(\d+)\.(.*)$", rest)
        if rest in fixed:
            out[fixed[rest]] = tensor
        elif rest == "proj":
            out["visual_projection.weight"] = tensor.T.contiguous()
        elif match and match.group(2).startswith("attn.in_proj_"):
            head, part = f"vision_model.encoder.layers.{match.group(1)}.self_attn.", match.group(2).rsplit("_", 1)[1]
            for letter, chunk in zip("qkv", tensor.chunk(3), strict=True):
                out[f"{head}{letter}_proj.{part}"] = chunk.contiguous()
        elif match:
            out[f"vision_model.encoder.layers.{match.group(1)}." + _rename(match.group(2), rules)] = tensor
    return out
