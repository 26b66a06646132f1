"""The one schema drives validation, JSON schema, CLI flags and UI controls, and they agree."""

import pytest

from sd_reimagine.errors import ParamError
from sd_reimagine.schema import LOW_VRAM, REFINER, REIMAGINE, SDXL
from sd_reimagine.standalone.cli import build_parser


def test_defaults_validate():
    for group in (REIMAGINE, REFINER, SDXL):
        assert group.validate({}) == group.defaults()


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("noise_level", 1000, "from 0 to 999"),
        ("noise_level", -1, "from 0 to 999"),
        ("width", 65, "multiple of 8"),
        ("height", 32, "from 64 to 2048"),
        ("steps", "many", "an integer"),
        ("cfg_scale", float("nan"), "a number"),
        ("sampler", "Turbo", "one of 'Default'"),
        ("image_text_mix", 1.5, "from 0 to 1"),
        ("n", 0, "from 1 to 16"),
    ],
)
def test_bad_values_name_parameter_value_and_range(name, value, fragment):
    with pytest.raises(ParamError) as info:
        REIMAGINE.validate({name: value})
    message = str(info.value)
    assert message.startswith(f"{name}=") and repr(value) in message and fragment in message


def test_unknown_parameter_is_refused():
    with pytest.raises(ParamError, match="known parameter"):
        REIMAGINE.validate({"noise": 3})


def test_strings_from_cli_are_converted():
    values = REIMAGINE.validate({"noise_level": "250", "cfg_scale": "4.5", "seed": "12"})
    assert values["noise_level"] == 250 and values["cfg_scale"] == 4.5 and values["seed"] == 12


def test_json_schema_mirrors_params():
    schema = REIMAGINE.json_schema()
    assert list(schema["properties"]) == REIMAGINE.names
    assert schema["properties"]["noise_level"] == {
        "type": "integer",
        "default": 0,
        "title": "Noise level",
        "description": REIMAGINE["noise_level"].tooltip,
        "minimum": 0,
        "maximum": 999,
    }
    assert schema["properties"]["width"]["multipleOf"] == 8


def test_pydantic_model_validates_ranges():
    pydantic = pytest.importorskip("pydantic")
    model = REIMAGINE.pydantic_model("ReimagineRequest")
    assert model(noise_level=5).noise_level == 5
    with pytest.raises(pydantic.ValidationError, match="noise_level"):
        model(noise_level=1000)


def test_cli_flags_are_the_schema():
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices["variations"]
    host = {"help", "references", "image_dir", "out", "dtype", "device", "verbose"}  # host options
    dests = {a.dest for a in sub._actions} - host - set(LOW_VRAM.names)
    assert dests == set(REIMAGINE.names)
    help_text = sub.format_help()
    for param in (*REIMAGINE, *LOW_VRAM):  # the low-VRAM host options come from the schema too
        assert param.flag in help_text


def test_ui_controls_are_the_schema():
    gr = pytest.importorskip("gradio")
    from sd_reimagine.ui import Controls, parameter_controls, reference_slots

    controls = Controls()
    with gr.Blocks():
        reference_slots(controls, "t")
        parameter_controls(controls, REIMAGINE, "t")
    assert list(controls.params) == [p.name for p in REIMAGINE if p.kind is str and p.choices is None] + [
        p.name for p in REIMAGINE if not (p.kind is str and p.choices is None)
    ]
    slider = controls.params["noise_level"]
    assert (slider.minimum, slider.maximum, slider.value) == (0, 999, 0)
    dropdown = controls.params["sampler"]
    assert [c[0] if isinstance(c, tuple) else c for c in dropdown.choices] == list(REIMAGINE["sampler"].choices)
