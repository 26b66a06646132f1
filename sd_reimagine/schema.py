"""The one parameter schema: every control, flag, API field, infotext key and X/Y/Z axis comes from here."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import ParamError
from .schedule import img2img_steps

DEFAULT_SAMPLER = "Default"
SCHEDULE_TYPES = ("Automatic", "Karras", "Exponential")
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class Param:
    """One parameter: its type, default, allowed values, label, tooltip and infotext key."""

    name: str
    kind: type
    default: Any
    label: str
    tooltip: str = ""
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: tuple[str, ...] | None = None
    multiple_of: int | None = None
    infotext: str | None = None
    xyz: bool = False
    multiline: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def allowed(self) -> str:
        """Human-readable description of the allowed values."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        parts = []
        if self.kind in (int, float):
            kind = "an integer" if self.kind is int else "a number"
            parts.append(f"{kind} from {_fmt(self.minimum)} to {_fmt(self.maximum)}")
        elif self.kind is bool:
            parts.append("true or false")
        else:
            parts.append("text")
        if self.multiple_of:
            parts.append(f"a multiple of {self.multiple_of}")
        return ", ".join(parts)

    def coerce(self, value: Any) -> Any:
        """Convert and check one value; raises ParamError naming the parameter, the value and what is allowed."""
        try:
            converted = _convert(self.kind, value)
        except (TypeError, ValueError):
            raise ParamError(self.name, value, self.allowed()) from None
        if self.choices is not None and converted not in self.choices:
            raise ParamError(self.name, value, self.allowed())
        if self.kind in (int, float):
            if not math.isfinite(converted):
                raise ParamError(self.name, value, self.allowed())
            if self.minimum is not None and converted < self.minimum:
                raise ParamError(self.name, value, self.allowed())
            if self.maximum is not None and converted > self.maximum:
                raise ParamError(self.name, value, self.allowed())
            if self.multiple_of and converted % self.multiple_of:
                raise ParamError(self.name, value, self.allowed())
        return converted

    def check_json_type(self, value: Any) -> None:
        """Refuse a value of the wrong JSON type (API requests follow the published schema strictly, no coercion)."""
        if not _has_json_type(self.kind, value):
            raise ParamError(self.name, value, f"{_JSON_TYPE_WORDS[self.kind]} ({self.allowed()})")

    def with_choices(self, choices: Iterable[str], default: str | None = None) -> Param:
        """This parameter with host-provided choices (the WebUI's sampler list, say)."""
        choices = tuple(choices)
        new_default = default if default is not None else (self.default if self.default in choices else choices[0])
        return replace(self, choices=choices, default=new_default)

    def with_default(self, default: Any) -> Param:
        return replace(self, default=default)

    def renamed(self, name: str) -> Param:
        """The same rules under another name (an item of a list: `images[0].weight`)."""
        return replace(self, name=name)


def _fmt(number: float | None) -> str:
    if number is None:
        return "any"
    return str(int(number)) if float(number).is_integer() else str(number)


_JSON_TYPE_WORDS = {int: "a JSON integer", float: "a JSON number", bool: "true or false", str: "a JSON string"}


def _has_json_type(kind: type, value: Any) -> bool:
    """JSON schema typing: booleans are neither integers nor numbers; an integer may be written 64.0, never 64.5."""
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        whole_float = isinstance(value, float) and value.is_integer()
        return whole_float or (isinstance(value, int) and not isinstance(value, bool))
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, str)


def _convert(kind: type, value: Any) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off", ""):
            return False
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        raise ValueError(value)
    if kind is int:
        if isinstance(value, bool):
            raise TypeError(value)
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError(value)
            return int(value)
        return int(str(value).strip())
    if kind is float:
        if isinstance(value, bool):
            raise TypeError(value)
        return float(value)
    if value is None:
        return ""
    return str(value)


@dataclass(frozen=True)
class ParamGroup:
    """An ordered set of parameters that one job takes."""

    name: str
    params: tuple[Param, ...]
    checks: tuple[Callable[[dict[str, Any]], None], ...] = field(default=())

    def __getitem__(self, name: str) -> Param:
        for param in self.params:
            if param.name == name:
                return param
        raise KeyError(name)

    def __iter__(self):
        return iter(self.params)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def validate(self, values: Mapping[str, Any], *, partial: bool = False, strict: bool = False) -> dict[str, Any]:
        """Defaults overlaid with `values`, every value checked; unknown names are refused.

        strict: values come from JSON (the API): each must have its parameter's JSON type, nothing is coerced.
        """
        unknown = sorted(set(values) - set(self.names))
        if unknown:
            raise ParamError(unknown[0], values[unknown[0]], "a known parameter: " + ", ".join(self.names))
        if strict:
            for name, value in values.items():
                self[name].check_json_type(value)
        merged = {} if partial else self.defaults()
        merged.update(values)
        checked = {name: self[name].coerce(value) for name, value in merged.items()}
        if not partial:
            for check in self.checks:
                check(checked)
        return checked

    def replace(self, param: Param) -> ParamGroup:
        """This group with one parameter swapped for a host-specific version."""
        return ParamGroup(self.name, tuple(param if p.name == param.name else p for p in self.params), self.checks)

    def json_schema(self) -> dict[str, Any]:
        """JSON schema (draft 2020-12 subset) of this group's parameters."""
        properties = {p.name: _json_property(p) for p in self.params}
        return {"title": self.name, "type": "object", "properties": properties, "additionalProperties": False}

    def pydantic_model(self, model_name: str, extra_fields: Mapping[str, tuple[Any, Any]] | None = None):
        """A pydantic model (works with pydantic 1 and 2) for API requests of this group."""
        import pydantic

        fields: dict[str, tuple[Any, Any]] = {}
        for p in self.params:
            constraints = {}
            if p.kind in (int, float):
                constraints = {"ge": p.minimum, "le": p.maximum}
            fields[p.name] = (p.kind, pydantic.Field(p.default, description=p.tooltip or p.label, **constraints))
        fields.update(extra_fields or {})
        return pydantic.create_model(model_name, **fields)

    def add_cli_arguments(self, parser, skip: Iterable[str] = ()) -> None:
        """Add one `--flag` per parameter, with its default and range in the help text."""
        for p in self.params:
            if p.name in skip:
                continue
            help_text = f"{p.tooltip or p.label} (default: {p.default!r}; {p.allowed()})"
            if p.kind is bool:
                parser.add_argument(
                    p.flag, dest=p.name, default=None, action=argparse.BooleanOptionalAction, help=help_text
                )
            else:
                parser.add_argument(p.flag, dest=p.name, default=None, metavar=p.name.upper(), help=help_text)

    def values_from_cli(self, namespace) -> dict[str, Any]:
        """The values given on the command line (unset flags keep the schema default)."""
        given = {p.name: getattr(namespace, p.name, None) for p in self.params}
        return self.validate({k: v for k, v in given.items() if v is not None})

    def xyz_params(self) -> list[Param]:
        return [p for p in self.params if p.xyz]


def _json_property(p: Param) -> dict[str, Any]:
    type_names = {int: "integer", float: "number", bool: "boolean", str: "string"}
    prop: dict[str, Any] = {"type": type_names[p.kind], "default": p.default, "title": p.label}
    if p.tooltip:
        prop["description"] = p.tooltip
    if p.choices is not None:
        prop["enum"] = list(p.choices)
    if p.minimum is not None:
        prop["minimum"] = p.minimum
    if p.maximum is not None:
        prop["maximum"] = p.maximum
    if p.multiple_of:
        prop["multipleOf"] = p.multiple_of
    return prop


# --- declaration helpers: one line per parameter ---------------------------------------------------------------


def number(name: str, kind: type, default, label: str, tooltip: str, minimum, maximum, step, **more) -> Param:
    return Param(name, kind, default, label, tooltip, minimum=minimum, maximum=maximum, step=step, **more)


def text(name: str, label: str, tooltip: str = "", default: str = "", **more) -> Param:
    return Param(name, str, default, label, tooltip, **more)


def choice(name: str, default: str, label: str, tooltip: str, choices, **more) -> Param:
    return Param(name, str, default, label, tooltip, choices=tuple(choices), **more)


def size(name: str, default: int, label: str) -> Param:
    return number(name, int, default, label, "Pixels; a multiple of 8.", 64, 2048, 8, multiple_of=8)


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
