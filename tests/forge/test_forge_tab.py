"""The Reimagine tab in a real Forge, in headless Chromium: upload a reference, generate, an image in the gallery."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ..browser import BROWSER_MARKS, CHROMIUM, CHROMIUM_ARGS

pytestmark = BROWSER_MARKS
SCREENSHOT = Path("/tmp/forge-reimagine-tab.png")


def set_number(page, elem_id: str, value: int) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")
    box.blur()


def test_tab_generates_an_image(forge, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    image = tmp_path / "ref.png"
    Image.fromarray((np.random.default_rng(1).random((64, 64, 3)) * 255).astype("uint8")).save(image)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        page.goto(forge.url)
        page.wait_for_selector("#reimagine_generate", state="attached", timeout=120_000)
        page.get_by_role("tab", name="Reimagine", exact=True).click()
        page.wait_for_selector("#reimagine_generate", state="visible", timeout=30_000)
        page.fill("#reimagine_prompt textarea", "a lighthouse")
        page.set_input_files("#reimagine_image_1 input[type=file]", str(image))
        page.wait_for_selector("#reimagine_image_1 img", timeout=30_000)
        for elem_id, value in [("reimagine_width", 64), ("reimagine_height", 64), ("reimagine_steps", 2)]:
            set_number(page, elem_id, value)
        page.click("#reimagine_generate")
        page.wait_for_selector("#reimagine_gallery img", timeout=600_000)
        page.wait_for_function(
            "() => (document.querySelector('#html_info_reimagine')?.innerText || '').includes('noise level')",
            timeout=30_000,
        )
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        info = page.inner_text("#html_info_reimagine")
        browser.close()
    assert "Reimagine noise level" in info, info[:500]
