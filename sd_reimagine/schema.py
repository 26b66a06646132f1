"""The one parameter schema: every control, flag, API field, infotext key and X/Y/Z axis comes from here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import ParamError
from .params import Param, ParamGroup, choice, number, size, text
from .schedule import img2img_steps

DEFAULT_SAMPLER = "Default"
SCHEDULE_TYPES = ("Automatic", "Karras", "Exponential")
MAX_SEED = 2**32 - 1


def refine_steps_run(values: Mapping[str, Any]) -> int:
    """Steps the refiner runs in refine mode: the last int(refiner_steps x refine_strength) of its schedule."""
    return img2img_steps(values["refiner_steps"], values["refine_strength"])[1]


def check_refine_runs_a_step(values: Mapping[str, Any]) -> None:
    """Cross-field rule of REFINER: refine mode must leave the refiner at least one step."""
    if values["enabled"] and values["refiner_mode"] == "refine" and refine_steps_run(values) < 1:
        minimum = 1 / values["refiner_steps"]
        raise ParamError(
            "refine_strength",
            values["refine_strength"],
            f"at least 1 / refiner_steps ({minimum:.3g}) so that the refiner runs a step",
        )


# The declarations below are kept one call per parameter, aligned by hand: the formatter would spread each over
# ten lines of bare positional values.
# fmt: off

# --- parameters shared by every job ----------------------------------------------------------------------------

SAMPLER_NAMES = ("Euler a", "Euler", "DPM++ 2M", "DPM++ 2M SDE", "DDIM", "UniPC", "Heun", "LMS", "DPM2", "DPM2 a")

PROMPT = text("prompt", "Prompt", "Optional text that steers the images.", multiline=True)
NEGATIVE_PROMPT = text("negative_prompt", "Negative prompt", "What the images should not show.", multiline=True)
SEED = number("seed", int, -1, "Seed", "-1 picks a random seed; image i of a job uses seed + i.", -1, MAX_SEED, 1,
              infotext="Seed")
STEPS = number("steps", int, 20, "Sampling steps", "", 1, 150, 1, infotext="Steps")
CFG_SCALE = number("cfg_scale", float, 7.0, "CFG scale", "Classifier-free guidance scale.", 1.0, 30.0, 0.5,
                   infotext="CFG scale")
SAMPLER = choice("sampler", DEFAULT_SAMPLER, "Sampling method",
                 "WebUI sampler name; 'Default' runs the model's own scheduler.", (DEFAULT_SAMPLER, *SAMPLER_NAMES),
                 infotext="Sampler")
SCHEDULE_TYPE = choice("schedule_type", "Automatic", "Schedule type", "Noise schedule of the sampler.",
                       SCHEDULE_TYPES, infotext="Schedule type")
N = number("n", int, 1, "Variations", "How many images one job makes.", 1, 16, 1)

# --- Reimagine (Stable unCLIP variations) ----------------------------------------------------------------------

UNCLIP_H = "stabilityai/stable-diffusion-2-1-unclip"
UNCLIP_L = "stabilityai/stable-diffusion-2-1-unclip-small"

REIMAGINE = ParamGroup("Reimagine", (
    text("model", "unCLIP model",
         "Stable unCLIP 2.1, or an SDXL base for Reimagine XL: Hugging Face id, diffusers folder or checkpoint file.",
         UNCLIP_H, infotext="Model"),
    PROMPT,
    NEGATIVE_PROMPT,
    text("image_encoder", "Image encoder (Reimagine XL)",
         "SDXL models only: the OpenCLIP ViT-bigG/14 vision tower, a clip_vision_g.safetensors file, folder or "
         "Hugging Face id; empty: clip_vision_g.safetensors from the models folder, else "
         "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k.", infotext="Reimagine image encoder"),
    number("noise_level", int, 0, "Noise level",
           "Noise added to the image embedding (0 = none, up to 999): higher wanders further from the references.",
           0, 999, 1, infotext="Reimagine noise level", xyz=True),
    number("image_text_mix", float, 0.0, "Image/text mix",
           "0 = the image embedding at full strength (plain Stable unCLIP); 1 = image embedding zeroed, prompt alone.",
           0.0, 1.0, 0.05, infotext="Reimagine image/text mix", xyz=True),
    number("structure_strength", float, 0.0, "Structure strength",
           "0 = start from pure noise; above 0 keep the layout of the first reference (img2img at denoise 1 - this).",
           0.0, 0.95, 0.05, infotext="Reimagine structure strength", xyz=True),
    N,
    SEED,
    STEPS,
    CFG_SCALE,
    SAMPLER,
    SCHEDULE_TYPE,
    size("width", 768, "Width"),
    size("height", 768, "Height"),
))

# --- SDXL base and refiner -------------------------------------------------------------------------------------

SDXL_BASE = "stabilityai/stable-diffusion-xl-base-1.0"
SDXL_REFINER = "stabilityai/stable-diffusion-xl-refiner-1.0"
REFINER_MODES = ("handoff", "refine")

REFINER = ParamGroup("Post-refiner", (
    Param("enabled", bool, False, "SDXL Refiner post-step"),
    text("refiner", "Refiner model", "SDXL refiner: Hugging Face id, folder, file or WebUI checkpoint.", SDXL_REFINER,
         infotext="Post-refiner", xyz=True),
    choice("refiner_mode", "handoff", "Mode",
           "handoff: the base stops at the switch point and the refiner finishes the same schedule; "
           "refine: the base finishes and the refiner runs img2img on its latents.", REFINER_MODES,
           infotext="Post-refiner mode"),
    number("switch_at", float, 0.8, "Switch at",
           "Handoff point on the noise schedule: 0.8 gives the refiner the last 200 of 1000 training timesteps.",
           0.01, 0.99, 0.01, infotext="Post-refiner switch at", xyz=True),
    number("refine_strength", float, 0.3, "Refine strength", "img2img denoising strength of the refine mode.",
           0.01, 1.0, 0.01, infotext="Post-refiner strength", xyz=True),
    number("refiner_steps", int, 20, "Refiner steps",
           "Refine mode: steps of the refiner's schedule (about strength x steps run).", 1, 150, 1,
           infotext="Post-refiner steps", xyz=True),
    text("refiner_prompt", "Refiner prompt", "Empty = the base prompt.", infotext="Post-refiner prompt",
         multiline=True),
    text("refiner_negative_prompt", "Refiner negative prompt", "Empty = the base negative prompt.",
         infotext="Post-refiner negative prompt", multiline=True),
    number("refiner_cfg_scale", float, 7.0, "Refiner CFG scale", "", 1.0, 30.0, 0.5,
           infotext="Post-refiner CFG scale"),
    choice("refiner_sampler", "", "Refiner sampler", "Empty = the base's sampler.", ("", *SAMPLER.choices),
           infotext="Post-refiner sampler"),
    choice("refiner_schedule_type", "", "Refiner schedule type", "Empty = the base's.", ("", *SCHEDULE_TYPES),
           infotext="Post-refiner schedule type"),
    number("aesthetic_score", float, 6.0, "Aesthetic score", "Refiner conditioning for the positive prompt.",
           0.0, 10.0, 0.5, infotext="Post-refiner aesthetic score", xyz=True),
    number("negative_aesthetic_score", float, 2.5, "Negative aesthetic score",
           "Refiner conditioning for the negative prompt.", 0.0, 10.0, 0.5,
           infotext="Post-refiner negative aesthetic score"),
    Param("keep_base", bool, True, "Keep the base image", "Save the base image beside the refined one.",
          infotext="Post-refiner keep base"),
), checks=(check_refine_runs_a_step,))

SDXL = ParamGroup("SDXL", (
    text("base", "Base model", "SDXL base: Hugging Face id, folder or checkpoint file.", SDXL_BASE, infotext="Model"),
    PROMPT,
    NEGATIVE_PROMPT,
    N,
    SEED,
    STEPS,
    CFG_SCALE,
    SAMPLER,
    SCHEDULE_TYPE,
    size("width", 1024, "Width"),
    size("height", 1024, "Height"),
))

# --- standalone host options (where weights live; never a job value or infotext key) ----------------------------

OFFLOAD_MODES = ("none", "model", "sequential")
LOW_VRAM = ParamGroup("Low VRAM", (
    choice("offload", "none", "CPU offload",
           "Keep weights in CPU memory: model = each model moves to the GPU while it runs (diffusers' "
           "enable_model_cpu_offload); sequential = layer by layer, least VRAM, slowest. Needs an accelerator.",
           OFFLOAD_MODES),
    Param("vae_tiling", bool, False, "VAE tiling",
          "Decode and encode large images in overlapping tiles: far less memory at large sizes, near-identical "
          "pixels."),
))

# fmt: on


def refiner_or_base(refiner_values: Mapping[str, Any], name: str, base_value: Any) -> Any:
    """A `refiner_*` prompt, sampler or schedule type, or the base's when left empty (blank counts as empty)."""
    own = refiner_values[name]
    return own if str(own).strip() else base_value
