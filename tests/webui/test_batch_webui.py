"""A folder at a time in a real WebUI 1.10.1 (tiny checkpoints, CPU): `POST /reimagine/v1/batch` refused without
the setting (which the API cannot set), outputs with their source tags, resume, a corrupt file passed over,
progress and interrupt over the folder, paths outside the allowed folder refused; the tab's Batch section."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from sd_reimagine.folder_batch import SOURCE_KEY
from sd_reimagine.images import open_image, png_bytes
from sd_reimagine.infotext import Lineage, parse_infotext, write_infotext
from sd_reimagine.lineage_tree import HASH_CHUNK
from sd_reimagine.webui.settings import BATCH_API_DIR

from ..browser import CHROMIUM, CHROMIUM_ARGS, free_port
from ..conftest import noise_image
from .conftest import WebUI, make_data_dir, webui_root

UNCLIP = "tiny-unclip-h"
JOB = {"model": UNCLIP, "seed": 1, "steps": 4, "width": 64, "height": 64, "sampler": "Euler a"}


@pytest.fixture(scope="module")
def allowed(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("batch-allowed").resolve()


@pytest.fixture(scope="module")
def batch_webui(tmp_path_factory, webui_tiny_models, allowed):
    """A WebUI whose config names `allowed` as the API's batch folder (the API itself cannot set it)."""
    data_dir = make_data_dir(tmp_path_factory.mktemp("webui-batch"), webui_tiny_models, {BATCH_API_DIR: str(allowed)})
    server = WebUI(webui_root(), data_dir, webui_tiny_models, free_port(), data_dir / "webui.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def input_folder(folder: Path, count: int = 3, extras: bool = True) -> Path:
    """`count` good images; with extras, one of them a Reimagine image, a corrupt PNG and a text file."""
    folder.mkdir(parents=True)
    for seed in range(count):
        noise_image(seed).save(folder / f"{seed}.png")
    if extras:
        fields = {"Steps": 2, "Seed": 1, "Reimagine references": "0123456789@1", "Reimagine generation": 1}
        (folder / "2.png").write_bytes(png_bytes(noise_image(2), write_infotext("a parent", "", fields)))
        (folder / "d.png").write_bytes(png_bytes(noise_image(3))[:60])
        (folder / "notes.txt").write_text("not an image")
    return folder


def batch(server: WebUI, **body):
    return server.post("/reimagine/v1/batch", json={**JOB, **body})


def files(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*")}


def tags(folder: Path) -> list[tuple[dict, dict, Image.Image]]:
    """(source tag, all text chunks, image) of every PNG in a folder."""
    found = []
    for path in sorted(folder.glob("*.png")):
        with Image.open(path) as image:
            image.load()
            found.append((json.loads(image.info[SOURCE_KEY]), dict(image.info), image.copy()))
    return found


def test_without_the_setting_batches_are_refused_and_the_api_cannot_set_it(webui, tmp_path):
    source = input_folder(tmp_path / "in", count=1, extras=False)
    response = batch(webui, input_dir=str(source), output_dir=str(tmp_path / "out"))
    assert response.status_code == 403, response.text
    message = response.json()["detail"][0]["msg"]
    assert BATCH_API_DIR in message and "names no folder" in message
    assert webui.post("/sdapi/v1/options", json={BATCH_API_DIR: str(tmp_path)}).status_code == 200
    assert webui.options().get(BATCH_API_DIR, "") == ""  # restrict_api: the server owner's grant, not the client's
    assert batch(webui, input_dir=str(source), output_dir=str(tmp_path / "out")).status_code == 403
    assert not (tmp_path / "out").exists()


def test_the_tab_has_a_batch_section(batch_webui):
    config = batch_webui.get("/config").json()
    ids = {c.get("props", {}).get("elem_id") for c in config["components"]}
    assert {"reimagine_batch_input_dir", "reimagine_batch_output_dir", "reimagine_batch_generate"} <= ids


def test_outputs_lineage_corrupt_file_and_resume(batch_webui, allowed):
    source = input_folder(allowed / "in1")
    response = batch(batch_webui, input_dir="in1", output_dir="out1", n=2)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["done"] == ["0.png", "1.png", "2.png"] and result["skipped"] == [] and not result["interrupted"]
    assert [f["name"] for f in result["failed"]] == ["d.png"] and "corrupt" in result["failed"][0]["reason"]
    assert result["ignored"] == ["notes.txt"] and result["output_dir"] == str(allowed / "out1")
    assert sorted(result["outputs"]) == sorted(files(allowed / "out1")) and len(result["outputs"]) == 6

    seen = set()
    for source_tag, chunks, image in tags(allowed / "out1"):
        name = source_tag["input"]
        seen.add((name, source_tag["index"]))
        assert source_tag["sha256"] == hashlib.sha256((source / name).read_bytes()).hexdigest()
        assert source_tag["complete"] and source_tag["seed"] == 1 and source_tag["n"] == 2
        assert chunks[HASH_CHUNK] == open_image(image).digest  # the lineage callback ran on the WebUI's save
        fields = parse_infotext(chunks["parameters"])[2]
        assert int(fields["Seed"]) == 1 + source_tag["index"] and fields["Model"].startswith(UNCLIP)
        lineage = Lineage.from_fields(fields)
        reference = open_image(source / name)
        assert lineage.references == ((reference.short_hash, 1.0),)
        expected = (2, (reference.short_hash,)) if name == "2.png" else (1, ())
        assert (lineage.generation, lineage.parents) == expected
    assert seen == {(name, index) for name in ("0.png", "1.png", "2.png") for index in (0, 1)}

    before = files(allowed / "out1")
    again = batch(batch_webui, input_dir=str(source), output_dir=str(allowed / "out1"), n=2).json()
    assert again["done"] == [] and again["skipped"] == ["0.png", "1.png", "2.png"] and again["outputs"] == []
    assert [f["name"] for f in again["failed"]] == ["d.png"]
    assert files(allowed / "out1") == before


def test_progress_and_interrupt_over_the_folder_then_a_rerun_completes(batch_webui, allowed):
    input_folder(allowed / "in2", count=3, extras=False)
    out = allowed / "out2"
    answer, job_counts = {}, set()

    def run():
        answer["first"] = batch(batch_webui, input_dir="in2", output_dir="out2", steps=30).json()

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 600
    while not list(out.glob("*.png")) and thread.is_alive() and time.monotonic() < deadline:
        job_counts.add(batch_webui.get("/sdapi/v1/progress?skip_current_image=true").json()["state"]["job_count"])
        time.sleep(0.05)
    assert batch_webui.post("/sdapi/v1/interrupt").status_code == 200
    thread.join(600)
    first = answer["first"]
    assert 3 in job_counts  # one sampling batch per image, over the whole folder
    assert first["interrupted"] and first["done"] and first["not_done"], first
    assert first["done"] + first["not_done"] == ["0.png", "1.png", "2.png"]
    kept = files(out)
    assert sorted(first["outputs"]) == sorted(kept)

    second = batch(batch_webui, input_dir="in2", output_dir="out2", steps=30).json()
    assert second["skipped"] == first["done"] and second["done"] == first["not_done"] and not second["interrupted"]
    assert set(kept) <= set(files(out))  # nothing made before is lost or overwritten
    finished = sorted(t["input"] for t, _, _ in tags(out) if t["complete"])
    assert finished == ["0.png", "1.png", "2.png"]


def test_paths_outside_the_allowed_folder_and_bad_values_are_refused(batch_webui, allowed, tmp_path):
    outside = input_folder(tmp_path / "outside", count=1, extras=False)
    input_folder(allowed / "in3", count=1, extras=False)
    os.symlink(outside, allowed / "escape")
    refused = [
        ({"input_dir": str(outside), "output_dir": "out3"}, "input_dir"),
        ({"input_dir": "in3", "output_dir": "../elsewhere"}, "output_dir"),
        ({"input_dir": "escape", "output_dir": "out3"}, "input_dir"),
    ]
    for body, field in refused:
        response = batch(batch_webui, **body)
        assert response.status_code == 403, response.text
        detail = response.json()["detail"][0]
        assert detail["loc"] == ["body", field] and "is not allowed: a folder inside" in detail["msg"]
        assert BATCH_API_DIR in detail["msg"]
    bad = [
        ({"input_dir": "in3", "output_dir": "out3", "noise_level": 5000}, "noise_level"),
        ({"input_dir": "missing", "output_dir": "out3"}, "input_dir"),
        ({"input_dir": "in3", "output_dir": "out3", "images": []}, "images"),
        ({"input_dir": "in3"}, "output_dir"),
    ]
    for body, field in bad:
        response = batch(batch_webui, **body)
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == ["body", field]
    assert not (allowed / "out3").exists() and not (tmp_path / "elsewhere").exists()


def test_links_out_of_the_input_folder_are_not_read_and_a_bad_output_folder_is_refused_first(
    batch_webui, allowed, tmp_path
):
    private = tmp_path / "private.png"
    noise_image(9).save(private)
    source = allowed / "in4"
    source.mkdir()
    os.symlink(private, source / "linked.png")  # a file inside the allowed folder that leads out of it
    os.symlink("self.png", source / "self.png")
    response = batch(batch_webui, input_dir="in4", output_dir="out4")
    assert response.status_code == 200, response.text
    failed = {item["name"]: item["reason"] for item in response.json()["failed"]}
    assert failed == {
        "linked.png": "linked.png is a link: links in the input folder are not followed here",
        "self.png": "self.png is a link: links in the input folder are not followed here",
    }
    assert response.json()["outputs"] == []
    (allowed / "file.txt").write_text("a regular file")
    input_folder(allowed / "in5", count=1, extras=False)
    response = batch(batch_webui, input_dir="in5", output_dir="file.txt/out")
    assert response.status_code == 422, response.text
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["body", "output_dir"]
    assert detail["msg"].endswith("is not allowed: a folder that can be created and written to (Not a directory)")


@pytest.mark.browser
def test_generate_batch_in_the_tab(batch_webui, tmp_path):
    """The tab's Batch section runs a folder with the tab's own controls and shows the summary and the outputs."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None:
        pytest.skip("Debian chromium is not installed")
    source, out = input_folder(tmp_path / "tab-in", count=2, extras=False), tmp_path / "tab-out"
    (source / "bad.webp").write_bytes(b"RIFF0000WEBPVP8 broken")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.goto(batch_webui.url)
        page.wait_for_selector("#reimagine_batch", state="attached", timeout=120_000)
        page.click("#tabs > .tab-nav > button:text-is('Reimagine')")
        for elem_id, value in [("reimagine_width", 64), ("reimagine_height", 64), ("reimagine_steps", 2)]:
            box = page.locator(f"#{elem_id} input[type=number]")
            box.fill(str(value))
            box.press("Enter")
        page.click("#reimagine_batch > .label-wrap")
        page.fill("#reimagine_batch_input_dir textarea, #reimagine_batch_input_dir input", str(source))
        page.fill("#reimagine_batch_output_dir textarea, #reimagine_batch_output_dir input", str(out))
        page.click("#reimagine_batch_generate")
        log = page.locator("#html_log_reimagine").first
        log.filter(has_text="Reimagine batch:").wait_for(timeout=300_000)
        text = log.inner_text()
        assert "2 done, 0 skipped (already done), 1 failed" in text and "failed: bad.webp:" in text, text
        assert page.locator("#reimagine_gallery img").count() >= 2
        browser.close()
    assert sorted(t["input"] for t, _, _ in tags(out)) == ["0.png", "1.png"]
