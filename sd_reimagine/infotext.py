"""A1111-style infotext: the `parameters` PNG chunk that the WebUI writes, reads and pastes back."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .schema import ParamGroup

# Same grammar as the WebUI's `generation_parameters_copypaste.re_param_code`.
_PARAM_RE = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_SIZE_RE = re.compile(r"^(\d+)x(\d+)$")

NOISE_LEVEL = "Reimagine noise level"
REFERENCES = "Reimagine references"
PARENT = "Reimagine parent"
GENERATION = "Reimagine generation"


def quote(value: Any) -> str:
    """Quote a value the way the WebUI does, so that commas, colons and newlines survive a round trip."""
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text and '"' not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return text


def write_infotext(prompt: str, negative_prompt: str, fields: Mapping[str, Any]) -> str:
    """Prompt line(s), `Negative prompt:` line, then `Key: value, ...` as the WebUI writes it.

    An empty prompt writes no line (the WebUI strips its infotext), so the text never starts with a blank line."""
    lines = [prompt] if prompt else []
    if negative_prompt:
        lines.append(f"Negative prompt: {negative_prompt}")
    # Empty values are left out, as the WebUI does: parsing gives the schema default ("") back.
    lines.append(", ".join(f"{key}: {quote(value)}" for key, value in fields.items() if value not in (None, "")))
    return "\n".join(lines)


def parse_infotext(text: str) -> tuple[str, str, dict[str, str]]:
    """Split infotext into prompt, negative prompt and the `Key: value` fields (values unquoted)."""
    lines = text.strip().split("\n")
    last = lines[-1] if lines else ""
    fields: dict[str, str] = {}
    if len(_PARAM_RE.findall(last)) >= 3:
        fields = {key.strip(): unquote(value.strip()) for key, value in _PARAM_RE.findall(last)}
        lines = lines[:-1]
    prompt_lines, negative_lines, in_negative = [], [], False
    for line in lines:
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:") :].strip()
        (negative_lines if in_negative else prompt_lines).append(line)
    return "\n".join(prompt_lines), "\n".join(negative_lines), fields


def group_fields(group: ParamGroup, values: Mapping[str, Any]) -> dict[str, Any]:
    """Infotext fields of a parameter group: each parameter's key, width/height as `Size`."""
    fields: dict[str, Any] = {}
    for param in group:
        if param.name in ("width", "height"):
            if param.name == "width":
                fields["Size"] = f"{values['width']}x{values['height']}"
            continue
        if param.infotext and param.name in values:
            fields[param.infotext] = values[param.name]
    return fields


def group_values(group: ParamGroup, prompt: str, negative_prompt: str, fields: Mapping[str, str]) -> dict[str, Any]:
    """The parameter values that infotext fields give for a group (checked against the schema)."""
    values: dict[str, Any] = {}
    names = group.names
    if "prompt" in names:
        values["prompt"] = prompt
    if "negative_prompt" in names:
        values["negative_prompt"] = negative_prompt
    size = _SIZE_RE.match(fields.get("Size", ""))
    if size and "width" in names:
        values["width"], values["height"] = int(size.group(1)), int(size.group(2))
    for param in group:
        if param.infotext and param.infotext in fields:
            values[param.name] = fields[param.infotext]
        elif param.infotext and param.default == "" and param.name not in values:
            values[param.name] = ""  # written empty means left out (see write_infotext)
    return group.validate(values, partial=True)


@dataclass(frozen=True)
class Lineage:
    """Where a variation comes from: its references (short hash, weight), parents and generation."""

    references: tuple[tuple[str, float], ...]
    parents: tuple[str, ...] = ()
    generation: int = 1

    def fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {REFERENCES: ", ".join(f"{h}@{_weight(w)}" for h, w in self.references)}
        if self.parents:
            fields[PARENT] = ", ".join(self.parents)
        fields[GENERATION] = self.generation
        return fields

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> Lineage | None:
        if REFERENCES not in fields:
            return None
        references = []
        for item in fields[REFERENCES].split(","):
            digest, _, weight = item.strip().partition("@")
            references.append((digest, float(weight or 1)))
        parents = tuple(p.strip() for p in fields.get(PARENT, "").split(",") if p.strip())
        return cls(tuple(references), parents, int(fields.get(GENERATION, 1)))


def _weight(weight: float) -> str:
    return f"{weight:g}"


def generation_of(infotext: str | None) -> int | None:
    """The Reimagine generation recorded in an image's infotext, or None if it is no Reimagine image."""
    if not infotext:
        return None
    lineage = Lineage.from_fields(parse_infotext(infotext)[2])
    return lineage.generation if lineage else None


def job_infotext(group: ParamGroup, values: Mapping[str, Any], seed: int, model: str, extra: Mapping[str, Any]) -> str:
    """Infotext of one image of a job: the group's fields with this image's seed and model name, plus `extra`."""
    fields = group_fields(group, {**values, "seed": seed, "model": model})
    if values.get("schedule_type") == "Automatic":
        fields.pop("Schedule type", None)
    ordered = {
        key: fields.pop(key)
        for key in ("Steps", "Sampler", "Schedule type", "CFG scale", "Seed", "Size")
        if key in fields
    }
    return write_infotext(values.get("prompt", ""), values.get("negative_prompt", ""), {**ordered, **fields, **extra})
