"""The lineage tree in a real WebUI 1.10.1: a variation of a variation through the API, and through the tab with the
files saved by the WebUI's own `images.save_image` (its on_before_image_saved hook adds `reimagine-hash`), then the
Lineage accordion in headless Chromium picking a node as reference 1."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from sd_reimagine.images import open_image
from sd_reimagine.infotext import Lineage, parse_infotext
from sd_reimagine.lineage_tree import HASH_CHUNK, LineageScanner
from sd_reimagine.png_text import read_png_text
from sd_reimagine.testing.lineage_folder import noise_picture, write_node
from sd_reimagine.webui.settings import OUTDIR

from ..browser import CHROMIUM, CHROMIUM_ARGS, free_port
from .conftest import WebUI, make_data_dir, webui_root
from .test_reimagine_webui import noise_png, variations


def saved(path: Path, b64: str) -> Path:
    path.write_bytes(base64.b64decode(b64))
    return path


def test_api_variation_of_a_variation_is_linked_by_its_own_hash(webui, tmp_path):
    first = variations(webui, seed=11, steps=2)
    a = saved(tmp_path / "a.png", first["images"][0])
    second = variations(webui, seed=12, steps=2, images=[{"image": first["images"][0], "weight": 1.0}])
    b = saved(tmp_path / "b.png", second["images"][0])
    for path in (a, b):
        assert read_png_text(path)[HASH_CHUNK] == open_image(path).digest
    original = Lineage.from_fields(parse_infotext(first["info"][0])[2]).references[0][0]
    tree = LineageScanner(disk_cache=False).tree(tmp_path)
    a_hash, b_hash = read_png_text(a)[HASH_CHUNK], read_png_text(b)[HASH_CHUNK]
    assert tree.roots == [original] and tree.children[original] == [a_hash] and tree.children[a_hash] == [b_hash]
    assert tree.stats.decoded == 0  # linked from text chunks alone


def test_a_plain_txt2img_output_gets_no_hash(webui, tmp_path):
    body = {"prompt": "plain", "steps": 2, "width": 64, "height": 64, "save_images": False}
    response = webui.post("/sdapi/v1/txt2img", json=body)
    assert response.status_code == 200, response.text
    assert HASH_CHUNK not in read_png_text(saved(tmp_path / "plain.png", response.json()["images"][0]))


@pytest.fixture
def saving(webui, tmp_path):
    """Tab jobs save their images into a fresh folder (restored afterwards)."""
    before = webui.options()
    folder = tmp_path / "reimagine-out"
    options = {"samples_save": True, "reimagine_outdir": str(folder), "sd_model_checkpoint": "tiny-sd15.safetensors"}
    assert webui.post("/sdapi/v1/options", json=options).status_code == 200
    yield folder
    restore = {key: before.get(key) for key in ("samples_save", "reimagine_outdir")}
    webui.post("/sdapi/v1/options", json={k: v for k, v in restore.items() if v is not None})


@pytest.fixture
def page(webui):
    sync_api = pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None:
        pytest.skip("Debian chromium is not installed")
    with sync_api.sync_playwright() as playwright:
        browser, page = open_reimagine_tab(playwright, webui.url)
        yield page
        browser.close()


def open_reimagine_tab(playwright, url: str):
    """(browser, page) of the WebUI at `url` with the Reimagine tab open."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    page.goto(url)
    page.wait_for_selector("#reimagine_lineage", state="attached", timeout=120_000)
    page.click("#tabs > .tab-nav > button:text-is('Reimagine')")
    return browser, page


def generate_and_wait(page, folder: Path, count: int) -> Path:
    """Click Generate; the newest PNG once the folder holds `count` of them."""
    page.click("#reimagine_generate")
    for _ in range(240):
        files = sorted(folder.rglob("*.png"), key=lambda p: p.stat().st_mtime_ns) if folder.is_dir() else []
        if len(files) >= count:
            return files[-1]
        page.wait_for_timeout(500)
    raise AssertionError(f"{count} images were not saved in {folder}")


@pytest.mark.browser
def test_tab_saves_hashes_and_the_lineage_accordion_picks_reference_1(page, saving, tmp_path):
    reference = tmp_path / "ref.png"
    Image.open(io.BytesIO(base64.b64decode(noise_png(7)))).save(reference)
    page.set_input_files("#reimagine_image_1 input[type=file]", str(reference))
    page.wait_for_selector("#reimagine_image_1 img", timeout=30_000)
    for elem_id, value in [("reimagine_width", 64), ("reimagine_height", 64), ("reimagine_steps", 2)]:
        box = page.locator(f"#{elem_id} input[type=number]")
        box.fill(str(value))
        box.press("Enter")
    first = generate_and_wait(page, saving, 1)
    first_hash = read_png_text(first)[HASH_CHUNK]
    assert first_hash == open_image(first).digest  # the hook hashed what the WebUI wrote

    page.click("#reimagine_lineage > .label-wrap")
    page.fill("#reimagine_lineage_folder textarea, #reimagine_lineage_folder input", str(saving))
    page.click("#reimagine_lineage_refresh")
    page.wait_for_selector(f"[data-reimagine-node='{first_hash}'] img", timeout=30_000)
    page.click(f"[data-reimagine-node='{first_hash}']")
    page.wait_for_function(
        "document.querySelector('#reimagine_lineage_picked textarea, #reimagine_lineage_picked input')"
        ".value.includes('Reference 1 is now')",
        timeout=30_000,
    )
    second = generate_and_wait(page, saving, 2)
    fields = parse_infotext(read_png_text(second)["parameters"])[2]
    assert fields["Reimagine parent"] == first_hash[:10] and fields["Reimagine generation"] == "2"

    page.click("#reimagine_lineage_refresh")
    second_hash = read_png_text(second)[HASH_CHUNK]
    page.wait_for_selector(f"[data-reimagine-node='{second_hash}']", timeout=30_000)
    tree = LineageScanner(disk_cache=False).tree(saving)
    assert tree.children[first_hash] == [second_hash]


@pytest.fixture(scope="module")
def hidden_dirs_webui(tmp_path_factory, webui_tiny_models):
    """A WebUI started with --hide-ui-dir-config whose Reimagine output folder holds a parent and its variation."""
    folder = tmp_path_factory.mktemp("hidden-out")
    parent = write_node(folder / "00000-1.png", noise_picture(40, 64), [("0123456789", 1.0, None)], seed=1)
    write_node(folder / "00001-2.png", noise_picture(41, 64), [(parent.digest[:10], 1.0, 1)], seed=2)
    data_dir = make_data_dir(tmp_path_factory.mktemp("webui-hidden"), webui_tiny_models, {OUTDIR: str(folder)})
    server = WebUI(webui_root(), data_dir, webui_tiny_models, free_port(), data_dir / "webui.log")
    server.flags = ["--hide-ui-dir-config"]
    server.start()
    try:
        yield server, folder, parent
    finally:
        server.stop()


@pytest.mark.browser
def test_with_hidden_folders_the_lineage_view_scans_the_output_folder_only(hidden_dirs_webui, tmp_path):
    server, folder, parent = hidden_dirs_webui
    server.post("/sdapi/v1/options", json={OUTDIR: str(tmp_path)})
    assert server.options()[OUTDIR] == str(folder)  # restricted, like the WebUI's own output folders
    sync_api = pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None:
        pytest.skip("Debian chromium is not installed")
    with sync_api.sync_playwright() as playwright:
        browser, page = open_reimagine_tab(playwright, server.url)
        page.click("#reimagine_lineage > .label-wrap")
        box = page.locator("#reimagine_lineage_folder textarea, #reimagine_lineage_folder input").first
        assert box.is_disabled() and box.input_value() == str(folder)
        page.click("#reimagine_lineage_refresh")
        page.wait_for_selector(f"[data-reimagine-node='{parent.digest}']", timeout=30_000)
        assert page.locator("#reimagine_lineage_view [data-reimagine-node]").count() == 2
        browser.close()
