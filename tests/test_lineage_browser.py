"""The app's Lineage tab in headless Chromium: the tree of a real output folder, a root picked, a node clicked into
reference slot 1, and the next job recording it as its parent."""

import os

import pytest

from sd_reimagine.testing.lineage_folder import noise_picture, write_node

from .browser import BROWSER_MARKS, CHROMIUM, CHROMIUM_ARGS, free_port
from .test_app_browser import set_number

pytestmark = BROWSER_MARKS

FIRST, SECOND = "0123456789", "9876543210"  # uploaded originals (not in the folder)
SMALL_JOB = [("reimagine_width", 64), ("reimagine_height", 64), ("reimagine_steps", 2), ("reimagine_n", 1)]


@pytest.fixture(scope="module")
def folder_app(tiny_models, tmp_path_factory):
    """(url, nodes) of the app over an output folder holding two families of variations."""
    from sd_reimagine.standalone.app import build_app, launch
    from sd_reimagine.standalone.session import Session

    out_dir = tmp_path_factory.mktemp("lineage-out")
    folder = out_dir / "reimagine"
    a = write_node(folder / "00000-1.png", noise_picture(1, 64), [(FIRST, 1.0, None)], seed=1, noise_level=100)
    b = write_node(folder / "00001-2.png", noise_picture(2, 64), [(a.digest[:10], 1.0, 1)], seed=2, noise_level=300)
    c = write_node(folder / "00002-3.png", noise_picture(3, 64), [(SECOND, 1.0, None)], seed=3)
    for seconds, written in enumerate((a, b, c)):  # c is the newest: its root leads
        os.utime(written.path, (1_700_000_000 + seconds, 1_700_000_000 + seconds))
    (folder / "broken.png").write_bytes(b"not a png")
    session = Session(device="cpu", out_dir=out_dir)
    demo = build_app(session, str(tiny_models["tiny-unclip"]))
    port = free_port()
    launch(demo, session, port=port, block=False)
    yield f"http://127.0.0.1:{port}", {"a": a, "b": b, "c": c}
    demo.close()


@pytest.fixture(scope="module")
def page(folder_app):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.goto(folder_app[0])
        page.wait_for_selector("#reimagine_generate")
        yield page
        browser.close()


def test_the_tree_shows_roots_variations_and_what_was_skipped(page, folder_app):
    nodes = folder_app[1]
    page.click("button[role=tab]:has-text('Lineage')")
    page.click("#reimagine_lineage_refresh")
    page.wait_for_selector("#reimagine_lineage_view .reimagine-lineage-node", timeout=30_000)
    summary = page.input_value("#reimagine_lineage_summary textarea, #reimagine_lineage_summary input")
    assert "3 Reimagine images, 2 original references" in summary and "1 unreadable skipped" in summary
    cards = page.locator("#reimagine_lineage_view [data-reimagine-node]")
    assert cards.count() == 1 and cards.get_attribute("data-reimagine-node") == nodes["c"].digest  # newest root first
    assert SECOND in page.locator("#reimagine_lineage_view .reimagine-lineage-root").inner_text()
    page.click("#reimagine_lineage_root input")
    page.click(f"[role=option]:has-text('{FIRST}')")
    page.wait_for_selector(f"[data-reimagine-node='{nodes['a'].digest}']", timeout=30_000)
    shown = {cards.nth(i).get_attribute("data-reimagine-node") for i in range(cards.count())}
    assert shown == {nodes["a"].digest, nodes["b"].digest}
    assert page.locator(f"[data-reimagine-node='{nodes['b'].digest}'] img[src^='data:image/jpeg']").count() == 1
    assert "noise 300" in page.locator(f"[data-reimagine-node='{nodes['b'].digest}']").inner_text()


def test_clicking_a_node_makes_it_reference_1_and_the_next_job_records_it(page, folder_app):
    b = folder_app[1]["b"]
    page.click(f"[data-reimagine-node='{b.digest}']")
    page.wait_for_function(
        "document.querySelector('#reimagine_lineage_picked textarea, #reimagine_lineage_picked input')"
        ".value.includes('Reference 1 is now 00001-2.png')",
        timeout=30_000,
    )
    page.click("button[role=tab]:has-text('Reimagine')")
    page.wait_for_selector("#reimagine_image_1_preview img", timeout=30_000)  # the loader read the picked file
    for elem_id, value in SMALL_JOB:
        set_number(page, elem_id, value)
    page.click("#reimagine_generate")
    page.wait_for_function(
        "document.querySelector('#reimagine_infotext textarea').value.includes('Reimagine generation: 3')",
        timeout=90_000,
    )
    infotext = page.input_value("#reimagine_infotext textarea")
    assert f"Reimagine parent: {b.digest[:10]}" in infotext and f"Reimagine references: {b.digest[:10]}@1" in infotext


def test_the_new_variation_appears_under_its_parent_after_refresh(page, folder_app):
    b = folder_app[1]["b"]
    page.click("button[role=tab]:has-text('Lineage')")
    page.click("#reimagine_lineage_refresh")
    page.wait_for_function(
        "document.querySelectorAll('#reimagine_lineage_view [data-reimagine-node]').length === 3", timeout=30_000
    )
    cards = page.locator("#reimagine_lineage_view [data-reimagine-node]")
    newest = cards.nth(2)
    assert newest.get_attribute("data-reimagine-node") != b.digest and "gen 3" in newest.inner_text()
    indent = [float(c.evaluate("e => parseFloat(e.style.marginLeft)")) for c in cards.all()]
    assert indent[0] < indent[1] < indent[2]  # a, then b under it, then the new one under b
