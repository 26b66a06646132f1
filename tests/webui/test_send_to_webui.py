"""Send to Reimagine in a real WebUI, in headless Chromium: txt2img gallery and PNG Info -> reference 1."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from sd_reimagine.images import image_digest

from ..browser import BROWSER_MARKS, CHROMIUM, CHROMIUM_ARGS

pytestmark = BROWSER_MARKS
SCREENSHOT = Path("/tmp/webui-send-to.png")
SLOT = "#reimagine_image_1 img"
PROMPT = "send-to probe, a red fox"


@pytest.fixture(scope="module")
def page(webui):
    sync_api = pytest.importorskip("playwright.sync_api")
    response = webui.post("/sdapi/v1/options", json={"sd_model_checkpoint": "tiny-sd15.safetensors"})
    assert response.status_code == 200, response.text
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.goto(webui.url)
        page.wait_for_selector("#txt2img_send_to_reimagine", state="attached", timeout=120_000)
        yield page
        browser.close()


def open_tab(page, label: str) -> None:
    page.click(f"#tabs > .tab-nav > button:text-is('{label}')")


def set_number(page, elem_id: str, value: int) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def slot_src(page) -> str:
    """The data URL reference 1 shows ("" when empty)."""
    return page.evaluate(f"() => document.querySelector({SLOT!r})?.src || ''")


def slot_image(page, before: str) -> Image.Image:
    """Reference 1 once it changed from `before`, as the browser holds it: what the next Reimagine job receives."""
    page.wait_for_function(f"() => (document.querySelector({SLOT!r})?.src || '') !== {before!r}", timeout=30_000)
    src = slot_src(page)
    assert src and src.startswith("data:image/png;base64,"), (src or "")[:80]
    return Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))


def assert_reimagine_tab_shown(page) -> None:
    page.wait_for_selector("#tab_reimagine", state="visible", timeout=10_000)
    for other in ("txt2img", "img2img", "pnginfo"):
        assert page.locator(f"#tab_{other}").is_hidden()


def assert_beside_webui_buttons(page, tabname: str) -> None:
    """Our button sits in the row of the WebUI's send-to buttons, right after "Send to extras"."""
    script = f"""() => {{
        const ours = document.querySelector('#{tabname}_send_to_reimagine');
        return ours.previousElementSibling === document.querySelector('#{tabname}_send_to_extras');
    }}"""
    assert page.evaluate(script)


def test_txt2img_gallery_send_to_reimagine(page):
    open_tab(page, "txt2img")
    page.fill("#txt2img_prompt textarea", PROMPT)
    for elem_id, value in [("txt2img_width", 64), ("txt2img_height", 64), ("txt2img_steps", 2)]:
        set_number(page, elem_id, value)
    page.click("#txt2img_generate")
    page.wait_for_selector("#txt2img_gallery img", timeout=120_000)
    page.wait_for_function("document.querySelector('#html_info_txt2img').textContent.includes('Steps: 2')")
    assert_beside_webui_buttons(page, "txt2img")
    # Emoji do not render in this headless Chromium (every tool button is a box): outline ours for the screenshot.
    page.eval_on_selector("#txt2img_send_to_reimagine", "b => b.style.outline = '3px solid #e33'")
    page.locator("#txt2img_results").screenshot(path=str(SCREENSHOT))

    before = slot_src(page)
    page.click("#txt2img_send_to_reimagine")
    assert_reimagine_tab_shown(page)
    image = slot_image(page, before)
    assert image.size == (64, 64)
    assert PROMPT in image.info.get("parameters", "") and "Steps: 2" in image.info["parameters"]
    page.wait_for_function(f"document.querySelector('#reimagine_prompt textarea').value === {PROMPT!r}")


def test_img2img_gallery_send_to_reimagine(page, tmp_path):
    source = tmp_path / "init.png"
    Image.new("RGB", (64, 64), (30, 120, 200)).save(source)
    open_tab(page, "img2img")
    page.set_input_files("#img2img_image input[type=file]", str(source))
    page.fill("#img2img_prompt textarea", "img2img probe")
    for elem_id, value in [("img2img_width", 64), ("img2img_height", 64), ("img2img_steps", 2)]:
        set_number(page, elem_id, value)
    page.click("#img2img_generate")
    page.wait_for_selector("#img2img_gallery img", timeout=120_000)
    page.wait_for_function("document.querySelector('#html_info_img2img').textContent.includes('Denoising strength')")
    assert_beside_webui_buttons(page, "img2img")

    before = slot_src(page)
    page.click("#img2img_send_to_reimagine")
    assert_reimagine_tab_shown(page)
    page.wait_for_function("document.querySelector('#reimagine_prompt textarea').value === 'img2img probe'")
    image = slot_image(page, before)
    assert image.size == (64, 64) and "Denoising strength" in image.info.get("parameters", "")


def reimagine_png(webui, tmp_path: Path) -> Path:
    """A Reimagine image (generation 1, infotext in its PNG), made through the extension's API."""
    body = {"model": "tiny-unclip-h", "seed": 5, "steps": 2, "width": 64, "height": 64, "sampler": "Euler a"}
    reference = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 40, 90)).save(reference, "PNG")
    body["images"] = [{"image": base64.b64encode(reference.getvalue()).decode("ascii"), "weight": 1.0}]
    response = webui.post("/reimagine/v1/variations", json=body)
    assert response.status_code == 200, response.text
    path = tmp_path / "reimagined.png"
    path.write_bytes(base64.b64decode(response.json()["images"][0]))
    return path


def test_pnginfo_send_to_reimagine_keeps_lineage(page, webui, tmp_path):
    path = reimagine_png(webui, tmp_path)
    parent = image_digest(Image.open(path).convert("RGB"))[:10]
    open_tab(page, "PNG Info")
    page.set_input_files("#pnginfo_image input[type=file]", str(path))
    page.wait_for_selector("#tab_pnginfo :text('Reimagine generation')", timeout=30_000)

    before = slot_src(page)
    page.click("#pnginfo_send_to_reimagine")
    assert_reimagine_tab_shown(page)
    image = slot_image(page, before)
    assert image_digest(image.convert("RGB"))[:10] == parent
    assert "Reimagine generation: 1" in image.info.get("parameters", "")

    # The next job records the sent image as its parent: the infotext survived the browser round trip.
    page.click("#reimagine_generate")
    page.wait_for_function(
        "document.querySelector('#html_info_reimagine').textContent.includes('Reimagine generation: 2')",
        timeout=120_000,
    )
    assert f"Reimagine parent: {parent}" in page.text_content("#html_info_reimagine")
