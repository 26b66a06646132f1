"""X/Y/Z plot axes for the post-refiner parameters (switch point, strength, steps, aesthetic score, checkpoint)."""

from __future__ import annotations

from typing import Any

from ..errors import ReimagineError
from ..schema import REFINER, Param
from .checkpoint_lookup import resolve_for_role, titles_for_role
from .refiner import OVERRIDES_ATTR

XYZ_MODULE = "xyz_grid.py"


def xyz_module():
    """The loaded xyz_grid script module (scripts load under their file name), or None."""
    from modules import scripts

    for data in scripts.scripts_data:
        if data.script_class.__module__ == XYZ_MODULE:
            return data.module
    return None


def apply_override(name: str):
    """Axis apply: store the value where the post-step reads it (apply gets a shallow copy of p: new dict)."""

    def apply(p, value: Any, _values) -> None:
        setattr(p, OVERRIDES_ATTR, {**(getattr(p, OVERRIDES_ATTR, None) or {}), name: value})

    return apply


def confirm_param(param: Param):
    """Axis confirm: every value must pass the schema (checkpoint names must resolve)."""

    def confirm(_p, values) -> None:
        for value in values:
            if param.name == "refiner":
                resolve_for_role(value, "refiner", "refiner")
            else:
                param.coerce(value)

    return confirm


def axis_label(param: Param) -> str:
    return "Post-refiner checkpoint" if param.name == "refiner" else param.infotext


def make_axis(module, param: Param):
    """One AxisOption for a schema parameter marked `xyz`."""
    if param.name == "refiner":
        return module.AxisOption(
            axis_label(param),
            str,
            apply_override(param.name),
            format_value=module.format_remove_path,
            confirm=confirm_param(param),
            cost=1.0,
            choices=lambda: titles_for_role("refiner"),
        )
    return module.AxisOption(axis_label(param), param.kind, apply_override(param.name), confirm=confirm_param(param))


def register_axes(*_args) -> None:
    """on_before_ui: add (or replace, after a UI reload) the post-refiner axes in the X/Y/Z plot script."""
    module = xyz_module()
    if module is None:
        return
    labels = {axis_label(p) for p in REFINER.xyz_params()}
    module.axis_options[:] = [axis for axis in module.axis_options if axis.label not in labels]
    try:
        module.axis_options.extend(make_axis(module, param) for param in REFINER.xyz_params())
    except (AttributeError, ReimagineError) as error:
        print(f"Reimagine: X/Y/Z axes not added: {error}")
