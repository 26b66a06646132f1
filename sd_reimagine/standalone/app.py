"""The standalone Gradio app: a Reimagine tab built by the shared UI builder (`sd_reimagine.ui`), and an SDXL tab.

Three things differ from plain gradio use, each for one reason:
- References arrive as files, and `open_image` (the loader the CLI and the WebUI use) decodes them: gradio's image
  component would decode before the app sees the file, with other limits, other colour conversions and errors that
  show the server's cache path.
- Sliders, numbers and dropdowns leave range and choice checks to the schema, so every refusal names its field
  (`noise_level=-1 is not allowed: ...`) instead of gradio's "Value -1 is less than minimum value 0.".
- Each job (variations, SDXL, refine) runs in a worker thread with a stop flag that its steps read: Stop sets it
  (the Reimagine tab's Stop also ends a "Refine"), and so do a cancelled event and a client that is gone (tab
  closed, HTTP client dropped), so the job ends at its next step and frees the model lock. A stopped job returns
  what it made, which is saved (and shown, when someone is still there).
"""

# No `from __future__ import annotations` here: gradio reads the `gr.SelectData` and `gr.Request` annotations at
# run time.

import functools
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ParamError, ReimagineError
from ..images import InputImage, open_image
from ..mixing import REFERENCE_WEIGHT
from ..model_size import sized_for_model
from ..schema import REFINER, REIMAGINE, SDXL, ParamGroup
from ..ui import Controls, as_gradio_error, load_references, parameter_controls, reference_slots
from .app_access import allowed_folders, warn_if_open
from .app_jobs import Jobs
from .app_lineage import lineage_tab
from .session import Session

PREVIEW_SIZE = (512, 512)
T = TypeVar("T")


@dataclass
class ReimagineTab:
    """The components of the Reimagine tab that its handlers read and write."""

    controls: Controls
    generate: Any
    stop: Any
    gallery: Any
    infotext: Any
    reimagine_this: Any
    refine_this: Any
    paths: Any  # gr.State: the saved images shown in the gallery
    selected: Any  # gr.State: the gallery index picked
    taken: Any  # gr.State: path of the result taken with "Reimagine this" (lineage)

    def outputs(self) -> list:
        return [self.gallery, self.paths, self.infotext, self.selected]


def build_app(
    session: Session,
    model: str | None = None,
    base: str | None = None,
    refiner: str | None = None,
    lineage_dirs: Sequence[Path] = (),
):
    """The Blocks app; `model`, `base` and `refiner` become the defaults of those fields, and the size of `model`
    (`base` in the SDXL tab) the default width and height. The Lineage tab shows the output folder and
    `lineage_dirs` only (`app_access`)."""
    import gradio as gr

    jobs = Jobs(session)
    with gr.Blocks(title="Reimagine", analytics_enabled=False) as demo:
        tab = reimagine_tab(model_group(REIMAGINE, "model", model))
        refiner_controls = sdxl_tab(jobs, model_group(SDXL, "base", base), model_group(REFINER, "refiner", refiner))
        wire_reimagine_tab(tab, jobs, refiner_controls)
        allowed = allowed_folders(session.out_dir, lineage_dirs)
        lineage_tab(tab.controls.images[0], tab.taken, session.out_dir, allowed)

        def client_gone(request: gr.Request) -> None:
            jobs.stops.stop_session(request.session_hash)

        # gradio runs unload events when a session's heartbeat connection drops (tab closed, client gone).
        demo.unload(client_gone)
    return demo


def model_group(group: ParamGroup, field: str, spec: str | None) -> ParamGroup:
    """`group` with `spec` as the default of its model `field`, and that model's own size as default width/height."""
    if spec:
        group = group.replace(group[field].with_default(spec))
    return sized_for_model(group, group[field].default) if "width" in group.names else group


def reimagine_tab(group: ParamGroup) -> ReimagineTab:
    """The Reimagine tab's layout: reference slots and parameters; buttons, gallery and infotext beside them."""
    import gradio as gr

    components = schema_checked_components()
    with gr.Tab("Reimagine", elem_id="reimagine_tab"):
        controls = Controls()
        with gr.Row():
            with gr.Column():
                reference_slots(controls, "reimagine", components=components)
                parameter_controls(controls, group, "reimagine", components=components)
            with gr.Column():
                with gr.Row():
                    generate = gr.Button("Generate", variant="primary", elem_id="reimagine_generate")
                    stop = gr.Button("Stop", variant="stop", elem_id="reimagine_stop")
                gallery = gr.Gallery(label="Variations", elem_id="reimagine_gallery", columns=2)
                infotext = gr.Textbox(label="Generation parameters", lines=4, elem_id="reimagine_infotext")
                with gr.Row():
                    reimagine_this = gr.Button("Reimagine this", elem_id="reimagine_this")
                    refine_this = gr.Button("Refine (SDXL refiner)", elem_id="reimagine_refine")
        states = gr.State([]), gr.State(0), gr.State(None)
    return ReimagineTab(controls, generate, stop, gallery, infotext, reimagine_this, refine_this, *states)


def wire_reimagine_tab(tab: ReimagineTab, jobs: Jobs, refiner_controls: Controls) -> None:
    """Generate, Stop (of a variations job or a refine), gallery picks, "Reimagine this" and "Refine"."""
    import gradio as gr

    def stop_job(request: gr.Request) -> None:
        jobs.stops.stop((request.session_hash, "reimagine"), (request.session_hash, "refine"))

    def select(saved: list[str], evt: gr.SelectData):
        index = evt.index if isinstance(evt.index, int) else evt.index[0]
        return index, _infotext_of(saved, index)

    def take_as_reference(saved: list[str], index: int):
        if not saved:
            raise gr.Error("generate variations first, then pick one to reimagine")
        path = saved[min(index, len(saved) - 1)]
        return path, path  # the file itself (with its infotext) becomes reference 1

    tab.refine_this.click(
        refine_handler(jobs, refiner_controls),
        inputs=[tab.paths, tab.selected, *refiner_controls.params.values()],
        outputs=[tab.gallery, tab.paths, tab.infotext],
        api_name="refine",
    )
    inputs = [tab.taken, *tab.controls.inputs()]
    tab.generate.click(
        variations_handler(tab.controls, jobs), inputs=inputs, outputs=tab.outputs(), api_name="reimagine"
    )
    tab.stop.click(stop_job, api_name="stop", queue=False)
    tab.gallery.select(select, inputs=[tab.paths], outputs=[tab.selected, tab.infotext])
    tab.reimagine_this.click(
        take_as_reference,
        inputs=[tab.paths, tab.selected],
        outputs=[tab.controls.images[0], tab.taken],
        api_name="reimagine_this",
    )


def variations_handler(controls: Controls, jobs: Jobs):
    """The Generate handler: variations of the references, saved and shown; a stopped job keeps what it made."""
    import gradio as gr

    async def run(request: gr.Request, progress=gr.Progress(), taken_path=None, *args):  # noqa: B008 - injected
        report = _reporter(progress, "Sampling")

        def work(should_stop: Callable[[], bool]):
            references, values = reimagine_inputs(controls, args, taken_path)  # off the event loop: decoding
            with jobs.lock:
                return jobs.session.variations(references, values, progress=report, should_stop=should_stop)

        job, saved = await jobs.run((request.session_hash, "reimagine"), work)
        if job.interrupted:
            gr.Info(f"Stopped: {len(job.images)} of {job.values['n']} images kept")
        items = [(str(p), f"seed {g.seed}") for p, g in zip(saved, job.images, strict=True)]
        first = job.images[0].infotext if job.images else ""
        return items, [str(p) for p in saved], first, 0

    return run


def refine_handler(jobs: Jobs, refiner_controls: Controls):
    """The "Refine (SDXL refiner)" handler: the picked image refined, added to the gallery; Stop ends it early."""
    import gradio as gr

    async def refine_selected(request: gr.Request, progress=gr.Progress(), saved=None, index=0, *refiner_args):  # noqa: B008
        if not saved:
            raise gr.Error("generate variations first, then pick one to refine")
        values = dict(zip(refiner_controls.params, refiner_args, strict=True))
        source = Path(saved[min(index, len(saved) - 1)])
        report = _reporter(progress, "Refining")

        def work(should_stop: Callable[[], bool]):
            image = open_image(source)
            with jobs.lock:
                return jobs.session.refine(image, values, progress=report, should_stop=should_stop)

        job, refined = await jobs.run((request.session_hash, "refine"), work)
        if job.interrupted:
            gr.Info("Stopped: the partly refined image is kept")
        saved = [*saved, *map(str, refined)]
        return [(p, Path(p).stem) for p in saved], saved, job.images[0].infotext

    return refine_selected


def reimagine_inputs(
    controls: Controls, args: Sequence[Any], taken_path: str | None
) -> tuple[list[tuple[InputImage, float]], dict[str, Any]]:
    """Handler arguments -> (references through the project's loader, checked values); errors name their field."""
    count = len(controls.images)
    files, weights = args[:count], args[count : 2 * count]
    pairs, values = controls.split(args)
    values = REIMAGINE.validate(values)
    slots = [index + 1 for index, file in enumerate(files) if file is not None]
    checked = [(file, _slot_weight(slot, weights[slot - 1])) for (file, _), slot in zip(pairs, slots, strict=True)]
    names = [f"reference {slot}" for slot in slots]
    return load_references(checked, _taken_image(taken_path), names), values


def _slot_weight(slot: int, value: Any) -> float:
    """The weight of reference `slot`, checked like every other value (named after its slot)."""
    try:
        return REFERENCE_WEIGHT.coerce(value)
    except ParamError:
        raise ParamError(f"weight of reference {slot}", value, REFERENCE_WEIGHT.allowed()) from None


def _taken_image(taken_path: str | None) -> list[InputImage]:
    """The result taken with "Reimagine this", if its file is still there (its infotext restores lineage)."""
    try:
        return [open_image(Path(taken_path))] if taken_path else []
    except ReimagineError:
        return []


def sdxl_tab(jobs: Jobs, base_group: ParamGroup, refiner_group: ParamGroup) -> Controls:
    """The SDXL tab: base parameters and the refiner's, from the schema; returns the refiner's controls."""
    import gradio as gr

    base_controls, refiner_controls = Controls(), Controls()
    components = schema_checked_components()
    with gr.Tab("SDXL", elem_id="sdxl_tab"):
        with gr.Row():
            with gr.Column():
                parameter_controls(base_controls, base_group, "sdxl", components=components)
                with gr.Accordion("SDXL Refiner", open=True, elem_id="sdxl_refiner"):
                    parameter_controls(refiner_controls, refiner_group, "sdxl_refiner", components=components)
            with gr.Column():
                with gr.Row():
                    generate = gr.Button("Generate", variant="primary", elem_id="sdxl_generate")
                    stop = gr.Button("Stop", variant="stop", elem_id="sdxl_stop")
                gallery = gr.Gallery(label="Images", elem_id="sdxl_gallery", columns=2)
                infotext = gr.Textbox(label="Generation parameters", lines=4, elem_id="sdxl_infotext")

    def stop_job(request: gr.Request) -> None:
        jobs.stops.stop((request.session_hash, "sdxl"))

    inputs = [*base_controls.params.values(), *refiner_controls.params.values()]
    generate.click(sdxl_handler(jobs, base_controls, refiner_controls), inputs, [gallery, infotext], api_name="sdxl")
    stop.click(stop_job, api_name="sdxl_stop", queue=False)
    return refiner_controls


def sdxl_handler(jobs: Jobs, base_controls: Controls, refiner_controls: Controls):
    """The SDXL tab's Generate handler: base (+ refiner), final images each followed by its kept base image."""
    import gradio as gr

    async def run(request: gr.Request, progress=gr.Progress(), *args):  # noqa: B008 - gradio injects Progress
        count = len(base_controls.params)
        values = dict(zip(base_controls.params, args[:count], strict=True))
        refiner_values = dict(zip(refiner_controls.params, args[count:], strict=True))
        report = _reporter(progress, "Base + refiner")

        def work(should_stop: Callable[[], bool]):
            with jobs.lock:
                return jobs.session.sdxl(values, refiner_values, progress=report, should_stop=should_stop)

        job, saved = await jobs.run((request.session_hash, "sdxl"), work)
        items = [(str(p), f"{g.label} seed {g.seed}") for p, g in zip(saved, job.all_images(), strict=True)]
        return items, job.images[0].infotext if job.images else ""

    return run


@functools.cache
def schema_checked_components() -> dict[str, Any]:
    """Slider, Number and Dropdown that pass values on unchecked (the schema checks them), and the reference input."""
    import gradio as gr

    def unchecked(make: Callable[..., Any]) -> Callable[..., Any]:
        return lambda *args, **kwargs: _set_preprocess(make(*args, **kwargs), _as_sent)

    def reference_file(**kwargs: Any):
        """The uploaded file's path, whatever its type: the project's loader judges it and names the reference."""
        return _set_preprocess(gr.File(**kwargs), _first_file_path)

    def reference(label: str, elem_id: str):
        file = reference_file(label=label, file_types=["image"], elem_id=elem_id, height=120)
        preview = gr.Image(
            label=f"{label} as loaded", type="pil", interactive=False, elem_id=f"{elem_id}_preview", height=200
        )
        file.change(functools.partial(preview_reference, name=label.lower()), file, preview, api_visibility="private")
        return file

    return {
        "Slider": unchecked(gr.Slider),
        "Number": unchecked(gr.Number),
        "Dropdown": unchecked(gr.Dropdown),
        "Reference": reference,
    }


def _set_preprocess(component: Any, preprocess: Callable[[Any], Any]) -> Any:
    """Replace one component's preprocess. On the instance, not in a subclass: gradio writes a .pyi stub beside the
    module of every component subclass, which would put a file into the installed package at run time."""
    component.preprocess = preprocess
    return component


def _as_sent(payload: Any) -> Any:
    return payload


def _first_file_path(payload: Any) -> str | None:
    files = getattr(payload, "root", [payload])  # one file, or a list of them
    return str(files[0].path) if files and files[0] is not None else None


def preview_reference(path: str | None, name: str):
    """What the loader makes of an uploaded reference (RGB, orientation applied), or its error."""
    if path is None:
        return None
    try:
        image = open_image(Path(path), name=name).image
    except ReimagineError as exc:
        raise as_gradio_error(exc) from None
    image.thumbnail(PREVIEW_SIZE)
    return image


def _reporter(progress, label: str):
    """progress(step, total) of a job -> the Gradio progress bar."""

    def report(step: int, total: int) -> None:
        progress((min(step, total), total), desc=label)

    return report


def _infotext_of(saved: list[str], index: int) -> str:
    if not saved or index >= len(saved):
        return ""
    return open_image(Path(saved[index])).infotext or ""


def launch(
    demo,
    session: Session,
    host: str = "127.0.0.1",
    port: int = 7860,
    block: bool = True,
    auth: tuple[str, str] | None = None,
) -> None:
    """Queue and start the app; gradio may serve the saved images wherever the output folder is. `auth`: gradio's
    sign-in for the page and every endpoint; without it, listening beyond this machine logs a warning."""
    warn_if_open(host, auth)
    demo.queue().launch(
        server_name=host,
        server_port=port,
        auth=auth,
        show_error=True,
        allowed_paths=[str(session.out_dir.resolve())],
        prevent_thread_lock=not block,
    )


def serve(
    host: str = "127.0.0.1",
    port: int = 7860,
    model: str | None = None,
    out_dir: Path | None = None,
    device: str | None = None,
    base: str | None = None,
    refiner: str | None = None,
    dtype: str | None = None,
    memory: dict | None = None,
    auth: tuple[str, str] | None = None,
    lineage_dirs: Sequence[Path] = (),
) -> None:
    """Start the app and block until it is stopped; a `dtype` the device cannot run is refused first.
    `memory`: the low-VRAM host options (schema LOW_VRAM: offload, vae_tiling) every job of the app runs with;
    `auth` and `lineage_dirs`: who may sign in, and the folders the Lineage tab may show besides the output folder."""
    allowed_folders(out_dir or Path("outputs"), lineage_dirs)  # a missing --lineage-dir is refused before loading
    session = Session(device=device, out_dir=out_dir, dtype=dtype, **(memory or {}))
    if session.note:
        print(f"note: {session.note}", file=sys.stderr)
    launch(build_app(session, model, base, refiner, lineage_dirs), session, host, port, auth=auth)
