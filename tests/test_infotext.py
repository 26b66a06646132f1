"""Infotext is written as the WebUI writes it and parses back to the same parameters; lineage is recorded."""

from sd_reimagine.images import open_image, png_bytes
from sd_reimagine.infotext import Lineage, group_values, job_infotext, parse_infotext, write_infotext
from sd_reimagine.mixing import Reference, active_references, lineage_of
from sd_reimagine.schema import REFINER, REIMAGINE

from .conftest import noise_image


def test_round_trip_of_every_reimagine_parameter():
    values = REIMAGINE.validate(
        {
            "prompt": 'a "red", fox: at dusk',
            "negative_prompt": "blurry\nlow quality",
            "noise_level": 250,
            "image_text_mix": 0.25,
            "structure_strength": 0.4,
            "seed": 42,
            "steps": 12,
            "cfg_scale": 5.5,
            "sampler": "DPM++ 2M",
            "schedule_type": "Karras",
            "width": 512,
            "height": 640,
            "model": "sd21-unclip-h",
        }
    )
    text = job_infotext(REIMAGINE, values, 42, "sd21-unclip-h", {})
    prompt, negative, fields = parse_infotext(text)
    parsed = group_values(REIMAGINE, prompt, negative, fields)
    expected = {k: v for k, v in values.items() if k != "n"}
    assert parsed == expected


def test_layout_is_the_webui_one():
    text = write_infotext("cat", "dog", {"Steps": 20, "Sampler": "Euler a", "Seed": 1, "Size": "768x768"})
    assert text == "cat\nNegative prompt: dog\nSteps: 20, Sampler: Euler a, Seed: 1, Size: 768x768"


def test_refiner_round_trip_uses_post_refiner_keys():
    values = REFINER.validate(
        {"enabled": True, "refiner_mode": "refine", "refine_strength": 0.25, "refiner_prompt": "x, y"}
    )
    text = write_infotext("p", "", {k: v for k, v in _fields(values).items()})
    prompt, negative, fields = parse_infotext(text)
    assert all(key.startswith("Post-refiner") for key in fields)
    assert "Refiner" not in fields and "Refiner switch at" not in fields
    parsed = group_values(REFINER, prompt, negative, fields)
    assert parsed == {k: v for k, v in values.items() if k != "enabled"}


def _fields(values):
    from sd_reimagine.infotext import group_fields

    return group_fields(REFINER, values)


def test_lineage_records_parent_and_generation():
    first = open_image(noise_image(0))
    parent_values = REIMAGINE.validate({"seed": 7})
    lineage = lineage_of(active_references([Reference(first)]))
    assert lineage.parents == () and lineage.generation == 1
    child_text = job_infotext(REIMAGINE, parent_values, 7, "m", lineage.fields())
    child = open_image(png_bytes(noise_image(3), child_text))
    assert child.infotext == child_text
    grandchild = lineage_of(active_references([Reference(child, 2), Reference(first, 1)]))
    assert grandchild.parents == (child.short_hash,)
    assert grandchild.generation == 2
    assert grandchild.references == ((child.short_hash, round(2 / 3, 4)), (first.short_hash, round(1 / 3, 4)))
    assert Lineage.from_fields(
        parse_infotext(job_infotext(REIMAGINE, parent_values, 7, "m", grandchild.fields()))[2]
    ) == (grandchild)


def test_an_empty_prompt_writes_no_blank_first_line():
    fields = {"Steps": 2, "Sampler": "Euler", "Seed": 1}
    assert write_infotext("", "", fields) == "Steps: 2, Sampler: Euler, Seed: 1"
    assert write_infotext("", "ugly", fields) == "Negative prompt: ugly\nSteps: 2, Sampler: Euler, Seed: 1"
    assert parse_infotext(write_infotext("", "ugly", fields)) == ("", "ugly", {k: str(v) for k, v in fields.items()})
