"""The standalone app driven in headless Chromium: upload, generate, gallery, infotext, errors, "Reimagine this",
Stop and a closed tab."""

import time

import pytest

from .browser import BROWSER_MARKS, CHROMIUM, CHROMIUM_ARGS, free_port
from .conftest import noise_image

pytestmark = BROWSER_MARKS


LONG_JOB = [("reimagine_width", 64), ("reimagine_height", 64), ("reimagine_steps", 150), ("reimagine_n", 16)]


@pytest.fixture(scope="module")
def app(tiny_models, tmp_path_factory):
    """(url, out_dir) of the app launched as `serve` launches it."""
    from sd_reimagine.standalone.app import build_app, launch
    from sd_reimagine.standalone.session import Session

    out_dir = tmp_path_factory.mktemp("app-out")
    session = Session(device="cpu", out_dir=out_dir)
    demo = build_app(
        session,
        str(tiny_models["tiny-unclip"]),
        str(tiny_models["tiny-sdxl-base"]),
        str(tiny_models["tiny-sdxl-refiner"]),
    )
    port = free_port()
    launch(demo, session, port=port, block=False)
    yield f"http://127.0.0.1:{port}", out_dir
    demo.close()


@pytest.fixture(scope="module")
def browser(app):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(browser, app):
    """One tab shared by the tests that build on each other's results."""
    page = open_app(browser, app[0])
    yield page
    page.close()


def open_app(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.goto(url)
    page.wait_for_selector("#reimagine_generate")
    return page


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
    page.set_input_files("#reimagine_image_1 input[type=file]", str(image))
    page.wait_for_selector("#reimagine_image_1_preview img")  # what our loader made of the file
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


def upload(page, path, slot: int = 1) -> None:
    page.set_input_files(f"#reimagine_image_{slot} input[type=file]", str(path))


def toast_with(page, text: str) -> str:
    page.wait_for_selector(f".toast-body:has-text({text!r})", timeout=30_000)
    return " ".join(page.locator(".toast-body").all_inner_texts())


def test_a_bad_upload_gets_the_loaders_message_naming_the_reference(browser, app, tmp_path):
    page = open_app(browser, app[0])
    truncated = tmp_path / "cut.png"
    noise_image(2, (256, 256)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:3000])
    upload(page, truncated)
    toasts = toast_with(page, "reference 1 is corrupt or truncated")
    assert "/tmp" not in toasts and "gradio" not in toasts  # no server cache path
    page.close()


def start_long_job(page, image, seed: int) -> None:
    upload(page, image)
    page.wait_for_selector("#reimagine_image_1_preview img")
    for elem_id, value in LONG_JOB:
        set_number(page, elem_id, value)
    page.locator("#reimagine_seed input").fill(str(seed))
    page.click("#reimagine_generate")
    page.wait_for_selector("#reimagine_gallery .progress-level:has-text('Sampling')", timeout=60_000)


def saved_seeds(out_dir) -> set[int]:
    return {int(p.stem.split("-")[1]) for p in (out_dir / "reimagine").glob("*.png")}


def test_stop_keeps_and_shows_the_images_made(browser, app, tmp_path):
    page = open_app(browser, app[0])
    image = tmp_path / "ref.png"
    noise_image(4).save(image)
    start_long_job(page, image, seed=5000)
    page.click("#reimagine_stop")
    page.wait_for_function("document.querySelectorAll('#reimagine_gallery img').length >= 4", timeout=30_000)
    assert "Stopped: 4 of 16 images kept" in toast_with(page, "Stopped")
    assert page.locator("#reimagine_gallery img").count() == 4
    assert {s for s in saved_seeds(app[1]) if s >= 5000} == {5000, 5001, 5002, 5003}
    page.close()


def test_closing_the_tab_stops_its_job_and_frees_the_models(browser, app, tmp_path):
    image = tmp_path / "ref.png"
    noise_image(4).save(image)
    gone = open_app(browser, app[0])
    start_long_job(gone, image, seed=6000)
    gone.close()
    page = open_app(browser, app[0])  # the next user's job runs at once
    upload(page, image)
    page.wait_for_selector("#reimagine_image_1_preview img")
    for elem_id, value in [("reimagine_width", 64), ("reimagine_height", 64), ("reimagine_steps", 2)]:
        set_number(page, elem_id, value)
    page.locator("#reimagine_seed input").fill("6100")
    page.click("#reimagine_generate")
    page.wait_for_function(
        "document.querySelector('#reimagine_infotext textarea').value.includes('Seed: 6100')", timeout=15_000
    )
    assert {s for s in saved_seeds(app[1]) if 6000 <= s < 6100} == {6000, 6001, 6002, 6003}  # stopped early
    page.close()


def test_the_size_is_the_models_own_and_stop_ends_a_refine(browser, app, tmp_path):
    page = open_app(browser, app[0])
    assert page.input_value("#reimagine_width input[type=number]") == "64"  # the tiny model's size, not 768
    assert page.input_value("#reimagine_height input[type=number]") == "64"
    image = tmp_path / "ref.png"
    noise_image(4).save(image)
    upload(page, image)
    page.wait_for_selector("#reimagine_image_1_preview img")
    set_number(page, "reimagine_steps", 2)
    page.click("#reimagine_generate")
    page.wait_for_function("document.querySelectorAll('#reimagine_gallery img').length >= 1", timeout=90_000)
    page.click("button[role=tab]:has-text('SDXL')")
    set_number(page, "sdxl_refiner_refine_strength", 1.0)
    set_number(page, "sdxl_refiner_refiner_steps", 150)  # about 60 s unstopped on 2 CPU cores
    page.click("button[role=tab]:has-text('Reimagine')")
    page.click("#reimagine_refine")
    page.wait_for_selector("#reimagine_gallery .progress-level:has-text('Refining')", timeout=60_000)
    started = time.monotonic()
    page.click("#reimagine_stop")
    assert "Stopped: the partly refined image is kept" in toast_with(page, "Stopped")
    assert time.monotonic() - started < 10
    page.wait_for_function("document.querySelectorAll('#reimagine_gallery img').length >= 2", timeout=30_000)
    page.close()
