"""The parameter machinery behind the schema: a Param (type, default, range, label, tooltip, infotext key) and a
ParamGroup that turns its params into validation, CLI flags, JSON schema and infotext; one-line declaration helpers."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import ParamError


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
