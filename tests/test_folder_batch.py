"""A folder at a time, the core: inputs, the resume rule, source tags, the API's path rule, and a run on the tiny
unCLIP that a stop cuts short and a rerun completes to exactly what one uninterrupted run makes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sd_reimagine.api_request import RequestError
from sd_reimagine.errors import ParamError
from sd_reimagine.folder_batch import (
    SOURCE_KEY,
    Run,
    SourceTag,
    finished_flags,
    job_key,
    list_folder,
    output_stem,
    plan_folder,
    read_tags,
    runs_to_do,
)
from sd_reimagine.folder_batch_api import PathRefused, allowed_folders, parse_batch_request
from sd_reimagine.images import png_bytes
from sd_reimagine.schema import REIMAGINE

from .conftest import noise_image

VALUES = REIMAGINE.validate({"n": 2, "seed": 5, "steps": 2, "width": 64, "height": 64})
SHA = "ab" * 32


def tag(index: int, seed: int = 5, values=VALUES, complete: bool = True, sha: str = SHA) -> SourceTag:
    return SourceTag("a.png", sha, job_key(values), seed, index, values["n"], complete)


def test_inputs_are_the_folders_images_by_name_not_subfolders(tmp_path):
    for name in ("b.png", "A.JPG", "c.webp", "d.jpeg", ".hidden.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "e.png").write_bytes(b"x")
    images, ignored, passed = list_folder(tmp_path)
    assert [p.name for p in images] == ["A.JPG", "b.png", "c.webp", "d.jpeg"]
    assert ignored == [".hidden.png", "notes.txt"] and passed == []


def test_a_link_to_itself_is_passed_over_with_a_reason(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    noise_image(0).save(source / "a.png")
    os.symlink("self.png", source / "self.png")
    plan = plan_folder(source, tmp_path / "out", VALUES)
    assert [p.name for p in plan.pending] == ["a.png"]
    assert plan.failed == [("self.png", "self.png is a link that loops or leads nowhere")]


def test_links_out_of_the_input_folder_are_followed_on_the_cli_and_never_through_the_api(tmp_path):
    source, outside = tmp_path / "in", tmp_path / "private.png"
    source.mkdir()
    noise_image(0).save(outside)
    os.symlink(outside, source / "linked.png")
    assert [p.name for p in plan_folder(source, tmp_path / "out", VALUES).pending] == ["linked.png"]  # the CLI
    plan = plan_folder(source, tmp_path / "out", VALUES, follow_links=False)
    assert plan.pending == [] and plan.failed == [
        ("linked.png", "linked.png is a link: links in the input folder are not followed here")
    ]


def test_a_file_swapped_for_a_link_after_planning_is_not_read_through_the_api(tmp_path):
    from sd_reimagine.folder_batch_run import BatchHost, run_folder

    source, outside = tmp_path / "in", tmp_path / "private.png"
    source.mkdir()
    noise_image(0).save(source / "a.png")
    noise_image(1).save(outside)
    plan = plan_folder(source, tmp_path / "out", VALUES, follow_links=False)
    (source / "a.png").unlink()
    os.symlink(outside, source / "a.png")  # between the listing and the read

    def never(*args):
        raise AssertionError("no job may run on a file outside the folder")

    summary = run_folder(plan, VALUES, BatchHost(never, never))
    assert summary.failed == [("a.png", "a.png is a link: links are not followed here")] and summary.outputs == []


def test_an_input_over_the_size_limit_is_passed_over_from_its_size(tmp_path):
    from sd_reimagine.images import MAX_BYTES

    source = tmp_path / "in"
    source.mkdir()
    with open(source / "huge.png", "wb") as file:
        file.truncate(MAX_BYTES + 1)  # sparse: nothing to read but zeros, and it is never read
    plan = plan_folder(source, tmp_path / "out", VALUES)
    assert plan.pending == [] and plan.failed == [
        ("huge.png", f"huge.png is {MAX_BYTES + 1} bytes; at most {MAX_BYTES} are allowed")
    ]


def test_an_output_folder_that_cannot_be_created_is_refused_before_any_work(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ParamError) as caught:
        plan_folder(source, tmp_path / "file.txt" / "out", VALUES)
    assert caught.value.name == "output_dir"
    assert str(caught.value).endswith("is not allowed: a folder that can be created and written to (Not a directory)")


@pytest.mark.parametrize(
    ("setup", "fragment"),
    [
        (lambda d: (d / "missing", d / "out"), "input_dir="),
        (lambda d: (d, d), "output_dir="),
        (lambda d: (d, d / "file.txt"), "this is a file"),
    ],
)
def test_bad_folders_are_refused_naming_the_field(tmp_path, setup, fragment):
    (tmp_path / "file.txt").write_text("x")
    source, target = setup(tmp_path)
    with pytest.raises(ParamError, match=fragment):
        plan_folder(source, target, VALUES)


def test_resume_rule():
    assert runs_to_do("a.png", SHA, VALUES, []) == (Run(0, 2, 5, 5),)
    assert runs_to_do("a.png", SHA, VALUES, [tag(0), tag(1)]) == ()
    # partly done: only the missing image, with the recorded job's seed for its index
    assert runs_to_do("a.png", SHA, VALUES, [tag(0)]) == (Run(1, 1, 6, 5),)
    assert runs_to_do("a.png", SHA, VALUES, [tag(0), tag(1, complete=False)]) == (Run(1, 1, 6, 5),)
    # changed file bytes, other settings, another fixed seed: new work
    assert runs_to_do("a.png", "cd" * 32, VALUES, [tag(0), tag(1)]) == (Run(0, 2, 5, 5),)
    other = {**VALUES, "noise_level": 100}
    assert runs_to_do("a.png", SHA, other, [tag(0), tag(1)]) == (Run(0, 2, 5, 5),)
    assert runs_to_do("a.png", SHA, {**VALUES, "seed": 9}, [tag(0), tag(1)]) == (Run(0, 2, 9, 9),)
    # seed -1: any recorded job counts; a larger n completes the recorded job
    random_seed = {**VALUES, "seed": -1}
    assert runs_to_do("a.png", SHA, random_seed, [tag(0, 77), tag(1, 77)]) == ()
    grown = {**VALUES, "n": 4}
    assert runs_to_do("a.png", SHA, grown, [tag(0, values=grown), tag(2, values=grown)]) == (
        Run(1, 1, 6, 5),
        Run(3, 1, 8, 5),
    )


def test_after_a_stop_the_last_batch_is_unfinished():
    assert finished_flags(3, False, 2) == [True, True, True]
    assert finished_flags(3, True, 2) == [True, True, False]
    assert finished_flags(4, True, 2) == [True, True, False, False]
    assert finished_flags(2, True, 1) == [True, False]


def test_tags_are_read_from_text_chunks_only(tmp_path):
    good = tag(1)
    (tmp_path / "00000-6-a.png").write_bytes(png_bytes(noise_image(0), "x", {SOURCE_KEY: good.text()}))
    (tmp_path / "00001-1-b.png").write_bytes(png_bytes(noise_image(1), "x", {SOURCE_KEY: "{not json"}))
    (tmp_path / "00002-1-c.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (tmp_path / "other.png").write_bytes(png_bytes(noise_image(2)))
    assert read_tags(tmp_path) == {"a.png": [good]}
    assert SourceTag.parse(good.text()) == good


def test_output_names_are_numbered_and_safe():
    assert output_stem(7, 123, "my cat [v2].final.png") == "00007-123-my_cat_v2_.final"
    assert output_stem(0, 1, "....png") == "00000-1-image"


def test_batch_request_is_read_strictly():
    body = {"input_dir": "in", "output_dir": "out", "noise_level": 10}
    assert parse_batch_request(body, REIMAGINE)[:2] == ("in", "out")
    for bad, loc in (
        ({**body, "images": []}, "images"),
        ({**body, "input_dir": 5}, "input_dir"),
        ({"input_dir": "in"}, "output_dir"),
        ({**body, "noise_level": True}, "noise_level"),
    ):
        with pytest.raises(RequestError) as caught:
            parse_batch_request(bad, REIMAGINE)
        assert caught.value.loc == ["body", loc]


def test_api_paths_must_lie_inside_the_allowed_folder(tmp_path):
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    (allowed / "in").mkdir(parents=True)
    outside.mkdir()
    os.symlink(outside, allowed / "link")
    with pytest.raises(PathRefused, match="the setting S names no folder"):
        allowed_folders("in", "out", "", "S")
    assert allowed_folders("in", "out", str(allowed), "S") == (allowed / "in", allowed / "out")
    assert allowed_folders(str(allowed / "in"), "in/out", str(allowed), "S")[1] == allowed / "in" / "out"
    for source, target, loc in (
        (str(outside), "out", "input_dir"),
        ("in", "../outside", "output_dir"),
        ("link", "out", "input_dir"),
        ("in", "link/out", "output_dir"),
    ):
        with pytest.raises(PathRefused, match="is not allowed: a folder inside") as caught:
            allowed_folders(source, target, str(allowed), "S")
        assert caught.value.loc == ["body", loc]


# --- a run on the tiny unCLIP ----------------------------------------------------------------------------------


def input_folder(folder: Path) -> Path:
    folder.mkdir()
    for seed, name in enumerate(("a.png", "b.jpg", "c.webp")):
        noise_image(seed, (48, 48)).save(folder / name)
    return folder


def run_batch(session, source: Path, target: Path, values: dict, stop_after_steps: int | None = None):
    from sd_reimagine.folder_batch_run import run_folder
    from sd_reimagine.standalone.batch import session_host

    steps = []
    plan = plan_folder(source, target, values)
    summary = run_folder(
        plan,
        values,
        session_host(session),
        progress=lambda where: steps.append(where) if where.step else None,
        should_stop=lambda: stop_after_steps is not None and len(steps) >= stop_after_steps,
    )
    return summary, steps


def finished_pixels(folder: Path) -> dict[tuple[str, int], np.ndarray]:
    """(input, index) -> pixels of every finished output in a folder."""
    found = {}
    for path in sorted(folder.glob("*.png")):
        with Image.open(path) as image:
            source = SourceTag.parse(image.info[SOURCE_KEY])
            if source.complete:
                assert (source.input, source.index) not in found, "an image made twice"
                found[(source.input, source.index)] = np.asarray(image.convert("RGB"))
    return found


def test_a_stop_keeps_what_is_done_and_a_rerun_completes_it(tiny_models, tmp_path):
    from sd_reimagine.standalone.session import Session

    session = Session(device="cpu", max_batch=1)
    values = REIMAGINE.validate({**VALUES, "model": str(tiny_models["tiny-unclip"])})
    source = input_folder(tmp_path / "in")
    reference, _ = run_batch(session, source, tmp_path / "reference", values)
    assert reference.done == ["a.png", "b.jpg", "c.webp"] and not reference.interrupted

    # 2 steps per image, one image per batch: stop once b.jpg's first image is finished
    first, steps = run_batch(session, source, tmp_path / "out", values, stop_after_steps=6)
    assert first.interrupted and first.done == ["a.png"] and first.not_done == ["b.jpg", "c.webp"]
    assert [(s.image, s.images, s.name, s.step, s.steps) for s in steps[:2]] == [
        (1, 3, "a.png", 1, 2),
        (1, 3, "a.png", 2, 2),
    ]
    assert (steps[-1].image, steps[-1].name) == (2, "b.jpg")
    kept = finished_pixels(tmp_path / "out")
    assert sorted(kept) == [("a.png", 0), ("a.png", 1), ("b.jpg", 0)]
    assert len(first.outputs) == 4  # b.jpg's second image, cut short, is saved too (tagged unfinished)

    second, _ = run_batch(session, source, tmp_path / "out", values)
    assert second.skipped == ["a.png"] and second.done == ["b.jpg", "c.webp"] and len(second.outputs) == 3
    completed, expected = finished_pixels(tmp_path / "out"), finished_pixels(tmp_path / "reference")
    assert sorted(completed) == sorted(expected)
    for key, pixels in expected.items():
        np.testing.assert_array_equal(completed[key], pixels, err_msg=str(key))
    assert not any(Path(p).name in {q.name for q in first.outputs} for p in second.outputs)
