"""The API request is read strictly by one core parser: JSON types as published, at most 4 references, data only."""

from __future__ import annotations

import base64
import io
import json
import struct

import numpy as np
import pytest

from sd_reimagine.api_request import RequestError, parse_variations_request, request_json_schema
from sd_reimagine.checkpoints import check_role, safetensors_problem
from sd_reimagine.errors import ParamError
from sd_reimagine.mixing import MAX_REFERENCES
from sd_reimagine.schema import REFINER, REIMAGINE

from .conftest import noise_image


def b64_png(seed: int = 0) -> str:
    buffer = io.BytesIO()
    noise_image(seed, (16, 16)).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def request(**fields) -> dict:
    return {"images": [{"image": b64_png(), "weight": 1}], **fields}


def refused(body) -> RequestError:
    with pytest.raises(RequestError) as info:
        parse_variations_request(body, REIMAGINE)
    return info.value


def test_a_good_request_is_read_with_its_types():
    references, values = parse_variations_request(request(n=2, cfg_scale=7, width=64.0, prompt="a cat"), REIMAGINE)
    assert len(references) == 1 and references[0][1] == 1.0
    assert values["n"] == 2 and values["cfg_scale"] == 7.0 and values["width"] == 64 and values["prompt"] == "a cat"
    assert isinstance(values["width"], int) and isinstance(values["cfg_scale"], float)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"n": True}, "n"),  # a boolean is not an integer
        ({"cfg_scale": True}, "cfg_scale"),  # nor a number
        ({"n": 2.5}, "n"),  # no silent truncation to 2
        ({"width": 64.5}, "width"),
        ({"prompt": 5}, "prompt"),
        ({"prompt": True}, "prompt"),
        ({"noise_level": "200"}, "noise_level"),
        ({"seed": None}, "seed"),
        ({"sampler": ["Euler"]}, "sampler"),
    ],
)
def test_a_value_of_the_wrong_json_type_is_refused_naming_the_field(fields, field):
    error = refused(request(**fields))
    assert error.loc == ["body", field]
    assert str(error).startswith(f"{field}=") and "JSON" in str(error)


@pytest.mark.parametrize(
    ("images", "loc", "fragment"),
    [
        (None, ["body", "images"], "required"),
        ([], ["body", "images"], f"1 to {MAX_REFERENCES}"),
        ([{"image": b64_png(i)} for i in range(MAX_REFERENCES + 1)], ["body", "images"], f"1 to {MAX_REFERENCES}"),
        ("/etc/passwd", ["body", "images"], "a list"),
        (["abc"], ["body", "images", 0], "an object"),
        ([{"image": 5}], ["body", "images", 0, "image"], "base64"),
        ([{"image": b64_png(), "weight": "1"}], ["body", "images", 0, "weight"], "JSON number"),
        ([{"image": b64_png(), "weight": True}], ["body", "images", 0, "weight"], "JSON number"),
        ([{"image": b64_png(), "weight": -1}], ["body", "images", 0, "weight"], "from 0 to 10"),
        ([{"image": b64_png(), "path": "/tmp/x.png"}], ["body", "images", 0, "path"], "image and weight"),
        ([{"image": "%%% not base64"}], ["body", "images", 0, "image"], "base64"),
        ([{"image": base64.b64encode(b"not an image").decode()}], ["body", "images", 0, "image"], "not an image"),
        ([{"image": b64_png(), "weight": 0}], ["body", "images"], "at least one weight above 0"),
    ],
)
def test_images_are_checked_with_the_bad_item_named(images, loc, fragment):
    body = {} if images is None else {"images": images}
    error = refused(body)
    assert error.loc == loc and fragment in str(error), str(error)


def test_the_maximum_of_references_is_allowed():
    references, _ = parse_variations_request(
        {"images": [{"image": b64_png(i)} for i in range(MAX_REFERENCES)]}, REIMAGINE
    )
    assert len(references) == MAX_REFERENCES


def test_body_must_be_an_object_and_unknown_fields_are_refused():
    assert refused([1, 2]).loc == ["body"]
    assert refused(request(colour="blue")).loc == ["body", "colour"]


def test_published_schema_matches_the_parser():
    schema = request_json_schema(REIMAGINE)
    assert schema["required"] == ["images"] and schema["properties"]["images"]["maxItems"] == MAX_REFERENCES
    assert schema["properties"]["n"]["type"] == "integer" and schema["properties"]["cfg_scale"]["type"] == "number"
    json.dumps(schema)


def test_strict_validation_of_the_refiner_group():
    with pytest.raises(ParamError, match="refiner=5 is not allowed: a JSON string"):
        REFINER.validate({"enabled": True, "refiner": 5}, strict=True)
    with pytest.raises(ParamError, match="enabled='x'"):
        REFINER.validate({"enabled": "x"}, strict=True)
    assert REFINER.validate({"enabled": True, "refiner": "r", "refiner_steps": 10}, strict=True)["refiner_steps"] == 10


@pytest.mark.parametrize(
    ("kind", "role", "ok"),
    [
        ("sdxl-refiner", "refiner", True),
        ("sdxl-base", "refiner", True),
        ("unclip-h", "refiner", False),
        ("sd", "refiner", False),
        ("unknown", "refiner", False),
        ("unclip-h", "unclip", True),
        ("unclip-l", "unclip", True),
        ("sdxl-base", "unclip", False),
    ],
)
def test_checkpoint_roles(kind, role, ok):
    if ok:
        check_role("refiner", "x", kind, role)
        return
    with pytest.raises(ParamError) as info:
        check_role("refiner", "x", kind, role)
    assert "refiner='x' is not allowed" in str(info.value) and "this one is" in str(info.value)


def write_safetensors(path, tensors: dict[str, list[int]], cut: int = 0):
    header, offset = {}, 0
    for name, shape in tensors.items():
        size = 4 * int(np.prod(shape))
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    data = struct.pack("<Q", len(raw)) + raw + bytes(offset)
    path.write_bytes(data[: len(data) - cut])
    return path


def test_safetensors_problems_are_found_from_the_header(tmp_path):
    good = write_safetensors(tmp_path / "good.safetensors", {"a": [4, 4], "b": [8]})
    assert safetensors_problem(good) is None
    truncated = write_safetensors(tmp_path / "cut.safetensors", {"a": [4, 4], "b": [8]}, cut=10)
    assert "truncated" in safetensors_problem(truncated)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\xff" * 64)
    assert "header" in safetensors_problem(garbage)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    assert safetensors_problem(empty)


def test_the_refiner_object_is_split_off_and_published_in_the_schema():
    from sd_reimagine.api_request import split_refiner

    body = {"images": [], "seed": 3, "refiner": {"enabled": True, "switch_at": 0.7}}
    rest, block = split_refiner(body)
    assert rest == {"images": [], "seed": 3} and block == {"enabled": True, "switch_at": 0.7}
    assert split_refiner({"seed": 3}) == ({"seed": 3}, None)
    with pytest.raises(RequestError) as error:
        split_refiner({"refiner": [1, 2]})
    assert error.value.loc == ["body", "refiner"] and "an object of post-step fields" in str(error.value)
    schema = request_json_schema(REIMAGINE, REFINER)
    assert schema["properties"]["refiner"]["properties"]["switch_at"]["maximum"] == REFINER["switch_at"].maximum
    assert "refiner" not in request_json_schema(REIMAGINE)["properties"]
