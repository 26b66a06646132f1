"""The standalone app driven in headless Chromium: upload, generate, gallery, infotext, errors, "Reimagine this"."""

import pytest

from .browser import BROWSER_MARKS, CHROMIUM, CHROMIUM_ARGS, free_port
from .conftest import noise_image

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def app_url(tiny_models, tmp_path_factory):
    from sd_reimagine.standalone.app import build_app
    from sd_reimagine.standalone.session import Session

    session = Session(device="cpu", out_dir=tmp_path_factory.mktemp("app-out"))
    demo = build_app(
        session,
        str(tiny_models["tiny-unclip"]),
        str(tiny_models["tiny-sdxl-base"]),
        str(tiny_models["tiny-sdxl-refiner"]),
    )
    port = free_port()
    demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True)
    yield f"http://127.0.0.1:{port}"
    demo.close()


@pytest.fixture(scope="module")
def page(app_url):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.goto(app_url)
        page.wait_for_selector("#reimagine_generate")
        yield page
        browser.close()


def set_number(page, elem_id: str, value) -> None:
    """Type a number into a slider's box and wait until the slider itself holds it (the app state has it then)."""
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")
    box.blur()
    page.wait_for_function(
        "([id, v]) => { const r = document.querySelector(`#${id} input[type=range]`); return !r || +r.value === v; }",
        arg=[elem_id, float(value)],
    )


def test_upload_generate_and_reimagine_this(page, tmp_path):
    image = tmp_path / "ref.png"
    noise_image(4).save(image)
    page.set_input_files("#reimagine_image_0 input[type=file]", str(image))
    for elem_id, value in [
        ("reimagine_width", 64),
        ("reimagine_height", 64),
        ("reimagine_steps", 2),
        ("reimagine_n", 2),
    ]:
        set_number(page, elem_id, value)
    page.locator("#reimagine_seed input").fill("123")
    page.click("#reimagine_generate")
    page.wait_for_function("document.querySelectorAll('#reimagine_gallery img').length >= 2", timeout=90_000)
    page.wait_for_function("document.querySelector('#reimagine_infotext textarea').value.includes('Seed: 123')")
    infotext = page.input_value("#reimagine_infotext textarea")
    assert "Size: 64x64" in infotext and "Reimagine generation: 1" in infotext

    # Take the second variation as the next reference: its lineage is recorded in the next job.
    page.locator("#reimagine_gallery img").nth(1).click()
    page.wait_for_function("document.querySelector('#reimagine_infotext textarea').value.includes('Seed: 124')")
    page.click("#reimagine_this")
    page.wait_for_timeout(1500)
    set_number(page, "reimagine_n", 1)
    page.click("#reimagine_generate")
    page.wait_for_function(
        "document.querySelector('#reimagine_infotext textarea').value.includes('Reimagine generation: 2')",
        timeout=90_000,
    )
    assert "Reimagine parent:" in page.input_value("#reimagine_infotext textarea")


def test_refine_a_variation_with_the_sdxl_refiner(page):
    page.click("button[role=tab]:has-text('SDXL')")  # the refiner settings live in the SDXL tab
    set_number(page, "sdxl_refiner_refine_strength", 0.5)
    set_number(page, "sdxl_refiner_refiner_steps", 4)
    page.click("button[role=tab]:has-text('Reimagine')")
    before = page.locator("#reimagine_gallery img").count()
    page.click("#reimagine_refine")
    page.wait_for_function(
        "document.querySelector('#reimagine_infotext textarea').value.includes('Post-refiner strength: 0.5')",
        timeout=90_000,
    )
    assert page.locator("#reimagine_gallery img").count() >= before
    assert "Reimagine generation" in page.input_value("#reimagine_infotext textarea")  # the source's infotext kept


def test_sdxl_tab_base_and_refiner(page):
    page.click("button[role=tab]:has-text('SDXL')")
    for elem_id, value in [("sdxl_width", 64), ("sdxl_height", 64), ("sdxl_steps", 4)]:
        set_number(page, elem_id, value)
    page.locator("#sdxl_refiner_enabled input").check()
    page.click("#sdxl_generate")
    page.wait_for_function(
        "document.querySelector('#sdxl_infotext textarea').value.includes('Post-refiner mode: handoff')",
        timeout=90_000,
    )
    assert page.locator("#sdxl_gallery img").count() >= 2  # refined + kept base
    page.click("button[role=tab]:has-text('Reimagine')")


def test_bad_value_shows_a_readable_error_and_the_app_keeps_running(page):
    page.locator("#reimagine_model textarea, #reimagine_model input").first.fill("/no/such/model")
    page.click("#reimagine_generate")
    page.wait_for_selector("text=no diffusers folder", timeout=30_000)
    assert page.locator("#reimagine_generate").is_enabled()
