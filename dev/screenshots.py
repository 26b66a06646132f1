"""Take the README's screenshots (docs/images/*.png) in headless Chromium, from real hosts started as the tests start
them (tests/webui/conftest.py, tests/forge/conftest.py) on the test models.

    REIMAGINE_WEBUI_DIR=/path/to/webui REIMAGINE_FORGE_DIR=/path/to/forge REIMAGINE_FORGE_MODELS=/path/to/models \
        .venv/bin/python dev/screenshots.py [--only app a1111 forge] [--out docs/images]

app: the standalone app (tiny models, built here); a1111: the Reimagine tab, the Lineage view and the post-step
accordion in txt2img (tiny checkpoints, built with the WebUI's Python); forge: Forge's Reimagine tab (real-size
random-weight checkpoints; the tab needs no model load). A host whose variable is unset is passed over, saying so.
Each image is written as a palette PNG under MAX_BYTES. Debian's fonts-noto-color-emoji draws the WebUI's icons.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402
from tests.forge import conftest as forge_host  # noqa: E402
from tests.webui import conftest as webui_host  # noqa: E402

MAX_BYTES = 150_000
VIEWPORT = {"width": 1280, "height": 900}
SMALL_JOB = [("reimagine_width", 64), ("reimagine_height", 64), ("reimagine_steps", 4)]


def picture(seed: int, size: int = 256) -> Image.Image:
    """A small drawn scene (sky, hills, sun) to upload as a reference: easier on the eye than noise."""
    hue = [(90, 140, 210), (230, 150, 90), (120, 90, 170), (70, 160, 150)][seed % 4]
    image = Image.new("RGB", (size, size), hue)
    draw = ImageDraw.Draw(image)
    draw.ellipse((size * 0.6, size * 0.1, size * 0.85, size * 0.35), fill=(250, 230, 120))
    for i, shade in enumerate(((60, 120, 60), (40, 95, 50))):
        top = size * (0.55 + 0.12 * i)
        draw.polygon([(0, size), (0, top), (size * 0.4, top - size * 0.15), (size, top), (size, size)], fill=shade)
    return image


def save_small(png: bytes, path: Path) -> Path:
    """Write a screenshot as a palette PNG, scaled down until it is under MAX_BYTES."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    while True:
        buffer = io.BytesIO()
        image.quantize(colors=96, method=Image.Quantize.MEDIANCUT).save(buffer, "PNG", optimize=True)
        if buffer.tell() <= MAX_BYTES or image.width < 400:
            break
        image = image.resize((int(image.width * 0.85), int(image.height * 0.85)), Image.Resampling.LANCZOS)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    print(f"{path} {image.width}x{image.height} {path.stat().st_size // 1024} KB")
    return path


def set_number(page, elem_id: str, value: float) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")
    box.blur()


def upload_reference(page, folder: Path, seed: int = 0) -> None:
    path = folder / f"reference-{seed}.png"
    picture(seed).save(path)
    page.set_input_files("#reimagine_image_1 input[type=file]", str(path))


def shoot_app(browser, out: Path, work: Path) -> None:
    """The standalone app's Reimagine tab after a 2-variation job on the tiny models."""
    from sd_reimagine.standalone.app import build_app, launch
    from sd_reimagine.standalone.session import Session
    from sd_reimagine.testing.tiny_diffusers import write_tiny_models

    os.chdir(work)  # the model fields then read as in the README's command: tiny-models/tiny-unclip
    write_tiny_models(Path("tiny-models"))
    session = Session(device="cpu", out_dir=Path("outputs"))
    demo = build_app(session, "tiny-models/tiny-unclip", "tiny-models/tiny-sdxl-base", "tiny-models/tiny-sdxl-refiner")
    port = free_port()
    launch(demo, session, port=port, block=False)
    try:
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(f"http://127.0.0.1:{port}")
        page.wait_for_selector("#reimagine_generate")
        upload_reference(page, work)
        page.wait_for_selector("#reimagine_image_1_preview img")
        page.fill("#reimagine_prompt textarea", "a hill at sunset, watercolour")
        for elem_id, value in [*SMALL_JOB, ("reimagine_n", 2), ("reimagine_noise_level", 200)]:
            set_number(page, elem_id, value)
        page.locator("#reimagine_seed input").first.fill("7")  # the same pictures on every run
        page.click("#reimagine_generate")
        page.wait_for_function("document.querySelectorAll('#reimagine_gallery img').length >= 2", timeout=120_000)
        save_small(page.screenshot(), out / "app.png")
        page.close()
    finally:
        demo.close()


def lineage_family(folder: Path) -> None:
    """An output folder holding an original's variations and a variation of a variation (Reimagine PNGs)."""
    from sd_reimagine.testing.lineage_folder import write_node

    first = write_node(folder / "00000-1.png", picture(1, 96), [("0123456789", 1.0, None)], seed=1, noise_level=100)
    write_node(folder / "00001-2.png", picture(2, 96), [("0123456789", 1.0, None)], seed=2, noise_level=300)
    write_node(folder / "00002-3.png", picture(3, 96), [(first.digest[:10], 1.0, 1)], seed=3, noise_level=200)


def shoot_a1111(browser, out: Path, work: Path) -> None:
    """A1111: the Reimagine tab after a job, its Lineage view, and the post-step accordion in txt2img."""
    from sd_reimagine.webui.settings import OUTDIR

    root = webui_host.webui_root()
    tiny = work / "webui-tiny-models"
    tiny.mkdir()
    webui_host.build_tiny_models(root, tiny)
    lineage_family(work / "reimagine-out")
    options = {OUTDIR: str(work / "reimagine-out")}
    data_dir = webui_host.make_data_dir(work / "webui-data", tiny, options)
    server = webui_host.WebUI(root, data_dir, tiny, free_port(), data_dir / "webui.log")
    server.start()
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.goto(server.url)
        page.wait_for_selector("#reimagine_lineage", state="attached", timeout=120_000)
        page.click("#tabs > .tab-nav > button:text-is('Reimagine')")
        upload_reference(page, work, seed=2)
        page.wait_for_selector("#reimagine_image_1 img", timeout=30_000)
        page.fill("#reimagine_prompt textarea", "a hill at sunset, watercolour")
        for elem_id, value in SMALL_JOB:
            set_number(page, elem_id, value)
        page.locator("#reimagine_seed input").first.fill("7")  # the same pictures on every run
        page.click("#reimagine_generate")
        page.wait_for_selector("#reimagine_gallery img", timeout=300_000)
        page.wait_for_timeout(1000)
        save_small(page.screenshot(), out / "a1111-tab.png")
        shoot_lineage(page, out)
        shoot_post_step(page, out)
        page.close()
    finally:
        server.stop()


def shoot_lineage(page, out: Path) -> None:
    page.click("#reimagine_lineage > .label-wrap")
    page.click("#reimagine_lineage_refresh")
    page.wait_for_selector("#reimagine_lineage_view .reimagine-lineage-node img", timeout=60_000)
    page.wait_for_timeout(1000)
    save_small(page.locator("#reimagine_lineage").screenshot(), out / "lineage.png")


def shoot_post_step(page, out: Path) -> None:
    page.set_viewport_size({"width": 1600, "height": 1100})  # a wider settings column: a shorter accordion
    page.click("#tabs > .tab-nav > button:text-is('txt2img')")
    accordion = page.locator("#tab_txt2img .input-accordion").filter(has_text="SDXL Refiner post-step").first
    accordion.locator(".label-wrap").first.click()
    page.wait_for_timeout(1000)
    # the WebUI lays its txt2img accordions out side by side: show ours open beside Hires. fix and its own Refiner
    accordions = page.locator("#tab_txt2img .input-accordion").all()
    boxes = [box for box in (item.bounding_box() for item in accordions) if box]
    left, top = min(b["x"] for b in boxes) - 8, min(b["y"] for b in boxes) - 8
    right, bottom = max(b["x"] + b["width"] for b in boxes) + 8, max(b["y"] + b["height"] for b in boxes) + 8
    clip = {"x": left, "y": top, "width": right - left, "height": bottom - top}
    save_small(page.screenshot(clip=clip, full_page=True), out / "post-step.png")


def shoot_forge(browser, out: Path, work: Path) -> None:
    """Forge's Reimagine tab with a reference uploaded (the checkpoint loads only on the first job)."""
    models = forge_host.models_dir()
    if not models.is_dir():
        raise SystemExit(f"{forge_host.ENV_MODELS}={models} is not a folder of real-size checkpoints")
    data_dir = forge_host.make_data_dir(work / "forge-data", models)
    server = forge_host.Forge(forge_host.forge_root(), data_dir, free_port(), data_dir / "forge.log")
    server.start()
    try:
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(server.url)
        page.wait_for_selector("#reimagine_generate", state="attached", timeout=120_000)
        page.get_by_role("tab", name="Reimagine", exact=True).click()
        page.wait_for_selector("#reimagine_generate", state="visible", timeout=30_000)
        upload_reference(page, work, seed=3)
        page.wait_for_selector("#reimagine_image_1 img", timeout=30_000)
        page.fill("#reimagine_prompt textarea", "a hill at sunset, watercolour")
        page.wait_for_timeout(1000)
        save_small(page.screenshot(), out / "forge-tab.png")
        page.close()
    finally:
        server.stop()


SHOTS: dict[str, tuple[Callable, Callable[[], object]]] = {
    "app": (shoot_app, lambda: True),
    "a1111": (shoot_a1111, webui_host.webui_root),
    "forge": (shoot_forge, forge_host.forge_root),
}
VARIABLES = {"a1111": webui_host.ENV_DIR, "forge": forge_host.ENV_DIR}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(SHOTS), default=list(SHOTS), help="hosts (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images", help="folder (default: docs/images)")
    args = parser.parse_args(argv)
    if CHROMIUM is None:
        print("Debian chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    from sd_reimagine.standalone.cli import quiet_model_loading

    quiet_model_loading()

    with sync_playwright() as playwright, tempfile.TemporaryDirectory(prefix="reimagine-shots-") as tmp:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for name in args.only:
            shoot, configured = SHOTS[name]
            if not configured():
                print(f"{name}: skipped, {VARIABLES[name]} is not set", file=sys.stderr)
                continue
            work = Path(tmp) / name
            work.mkdir()
            shoot(browser, args.out, work)
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
