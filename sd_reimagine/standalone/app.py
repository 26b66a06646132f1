"""The standalone Gradio app: a Reimagine tab built by the shared UI builder (`sd_reimagine.ui`), and an SDXL tab.

Three things differ from plain gradio use, each for one reason:
- References arrive as files, and `open_image` (the loader the CLI and the WebUI use) decodes them: gradio's image
  component would decode before the app sees the file, with other limits, other colour conversions and errors that
  show the server's cache path.
- Sliders, numbers and dropdowns leave range and choice checks to the schema, so every refusal names its field
  (`noise_level=-1 is not allowed: ...`) instead of gradio's "Value -1 is less than minimum value 0.".
- Each job runs in a worker thread with a stop flag that its steps read: Stop sets it, and so do a cancelled event
  and a client that is gone (tab closed, HTTP client dropped), so the job ends at its next step and frees the model
  lock. A stopped job returns what it made, which is saved (and shown, when someone is still there).
"""

# No `from __future__ import annotations` here: gradio reads the `gr.SelectData` and `gr.Request` annotations at
# run time.

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ParamError, ReimagineError
from ..images import InputImage, open_image
from ..mixing import REFERENCE_WEIGHT
from ..schema import REFINER, REIMAGINE, SDXL
from ..ui import Controls, as_gradio_error, load_references, parameter_controls, reference_slots
from .session import Session

PREVIEW_SIZE = (512, 512)
T = TypeVar("T")


def build_app(session: Session, model: str | None = None, base: str | None = None, refiner: str | None = None):
    """The Blocks app; `model`, `base` and `refiner` become the defaults of those fields."""
    import gradio as gr

    group = REIMAGINE.replace(REIMAGINE["model"].with_default(model)) if model else REIMAGINE
    lock = threading.Lock()  # one job at a time on the loaded models
    stops = StopFlags()
    components = schema_checked_components()

    with gr.Blocks(title="Reimagine", analytics_enabled=False) as demo:
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
            paths = gr.State([])
            selected = gr.State(0)
            taken = gr.State(None)  # path of the result taken with "Reimagine this" (lineage)

        async def run(request: gr.Request, progress=gr.Progress(), taken_path=None, *args):  # noqa: B008 - injected
            key, flag = stops.new((request.session_hash, "reimagine"))

            report = _reporter(progress, "Sampling")

            def work(should_stop: Callable[[], bool]):
                references, values = reimagine_inputs(controls, args, taken_path)  # off the event loop: decoding
                with lock:
                    return session.variations(references, values, progress=report, should_stop=should_stop)

            try:
                job, saved = await run_stoppable(work, flag)
            except ReimagineError as exc:
                raise as_gradio_error(exc) from None
            finally:
                stops.drop(key, flag)
            if job.interrupted:
                gr.Info(f"Stopped: {len(job.images)} of {job.values['n']} images kept")
            items = [(str(p), f"seed {g.seed}") for p, g in zip(saved, job.images, strict=True)]
            first = job.images[0].infotext if job.images else ""
            return items, [str(p) for p in saved], first, 0

        def stop_job(request: gr.Request) -> None:
            stops.stop((request.session_hash, "reimagine"))

        def select(saved: list[str], evt: gr.SelectData):
            index = evt.index if isinstance(evt.index, int) else evt.index[0]
            return index, _infotext_of(saved, index)

        def take_as_reference(saved: list[str], index: int):
            if not saved:
                raise gr.Error("generate variations first, then pick one to reimagine")
            path = saved[min(index, len(saved) - 1)]
            return path, path  # the file itself (with its infotext) becomes reference 1

        sdxl_controls, refiner_controls = sdxl_tab(session, lock, stops, base, refiner)

        def refine_selected(saved: list[str], index: int, *refiner_args):
            if not saved:
                raise gr.Error("generate variations first, then pick one to refine")
            refiner_values = dict(zip(refiner_controls.params, refiner_args, strict=True))
            try:
                with lock:
                    job, refined = session.refine(open_image(Path(saved[min(index, len(saved) - 1)])), refiner_values)
            except ReimagineError as exc:
                raise as_gradio_error(exc) from None
            saved = [*saved, *map(str, refined)]
            return [(p, Path(p).stem) for p in saved], saved, job.images[0].infotext

        refine_this.click(
            refine_selected,
            inputs=[paths, selected, *refiner_controls.params.values()],
            outputs=[gallery, paths, infotext],
            api_name="refine",
        )
        outputs = [gallery, paths, infotext, selected]
        generate.click(run, inputs=[taken, *controls.inputs()], outputs=outputs, api_name="reimagine")
        stop.click(stop_job, api_name="stop", queue=False)
        gallery.select(select, inputs=[paths], outputs=[selected, infotext])
        reimagine_this.click(
            take_as_reference, inputs=[paths, selected], outputs=[controls.images[0], taken], api_name="reimagine_this"
        )

        def client_gone(request: gr.Request) -> None:
            stops.stop_session(request.session_hash)

        # gradio runs unload events when a session's heartbeat connection drops (tab closed, client gone).
        demo.unload(client_gone)
    return demo


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


def sdxl_tab(
    session: Session, lock: threading.Lock, stops: "StopFlags", base: str | None, refiner: str | None
) -> tuple[Controls, Controls]:
    """The SDXL tab: base parameters and the refiner's, from the schema."""
    import gradio as gr

    base_group = SDXL.replace(SDXL["base"].with_default(base)) if base else SDXL
    refiner_group = REFINER.replace(REFINER["refiner"].with_default(refiner)) if refiner else REFINER
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

    async def run(request: gr.Request, progress=gr.Progress(), *args):  # noqa: B008 - gradio injects Progress
        key, flag = stops.new((request.session_hash, "sdxl"))
        count = len(base_controls.params)
        values = dict(zip(base_controls.params, args[:count], strict=True))
        refiner_values = dict(zip(refiner_controls.params, args[count:], strict=True))

        report = _reporter(progress, "Base + refiner")

        def work(should_stop: Callable[[], bool]):
            with lock:
                return session.sdxl(values, refiner_values, progress=report, should_stop=should_stop)

        try:
            job, saved = await run_stoppable(work, flag)
        except ReimagineError as exc:
            raise as_gradio_error(exc) from None
        finally:
            stops.drop(key, flag)
        items = [(str(p), f"{g.label} seed {g.seed}") for p, g in zip(saved, job.all_images(), strict=True)]
        return items, job.images[0].infotext if job.images else ""

    def stop_job(request: gr.Request) -> None:
        stops.stop((request.session_hash, "sdxl"))

    inputs = [*base_controls.params.values(), *refiner_controls.params.values()]
    generate.click(run, inputs=inputs, outputs=[gallery, infotext], api_name="sdxl")
    stop.click(stop_job, api_name="sdxl_stop", queue=False)
    return base_controls, refiner_controls


class StopFlags:
    """The stop flag of each running job, by (browser session, tab): Stop sets it, the job's steps read it."""

    def __init__(self) -> None:
        self._flags: dict[tuple, threading.Event] = {}
        self._guard = threading.Lock()

    def new(self, key: tuple) -> tuple[tuple, threading.Event]:
        flag = threading.Event()
        with self._guard:
            self._flags[key] = flag
        return key, flag

    def stop(self, key: tuple) -> None:
        with self._guard:
            flag = self._flags.get(key)
        if flag is not None:
            flag.set()

    def stop_session(self, session_hash: str) -> None:
        """Stop every job of one browser session."""
        with self._guard:
            flags = [flag for key, flag in self._flags.items() if key[0] == session_hash]
        for flag in flags:
            flag.set()

    def drop(self, key: tuple, flag: threading.Event) -> None:
        with self._guard:
            if self._flags.get(key) is flag:  # a later job of the same session may have replaced it
                del self._flags[key]


async def run_stoppable(work: Callable[[Callable[[], bool]], T], stop: threading.Event) -> T:
    """Run `work(should_stop)` in a worker thread and await it; a cancelled event stops it at its next step.

    gradio cancels an event by cancelling its task (`/cancel`, a client's `job.cancel()`), which cannot stop a
    thread: the CancelledError lands here and sets `stop`, so the job ends at its next step and frees the lock.
    """
    loop = asyncio.get_running_loop()
    # The thread runs in a copy of this context: gr.Progress finds its event through context variables.
    future = loop.run_in_executor(None, contextvars.copy_context().run, work, stop.is_set)
    try:
        return await future
    except asyncio.CancelledError:
        stop.set()
        raise


@functools.cache
def schema_checked_components() -> dict[str, Any]:
    """Slider, Number and Dropdown that pass values on unchecked (the schema checks them), and the reference input."""
    import gradio as gr

    class Slider(gr.Slider):
        is_template = True  # drawn by gradio's own front end for the parent class

        def preprocess(self, payload: Any) -> Any:
            return payload

    class Number(gr.Number):
        is_template = True

        def preprocess(self, payload: Any) -> Any:
            return payload

    class Dropdown(gr.Dropdown):
        is_template = True

        def preprocess(self, payload: Any) -> Any:
            return payload

    class ReferenceFile(gr.File):
        """The uploaded file's path, whatever its type: the project's loader judges it and names the reference."""

        is_template = True

        def preprocess(self, payload: Any) -> str | None:
            files = getattr(payload, "root", [payload])  # one file, or a list of them
            return str(files[0].path) if files and files[0] is not None else None

    def reference(label: str, elem_id: str):
        file = ReferenceFile(label=label, file_types=["image"], elem_id=elem_id, height=120)
        preview = gr.Image(
            label=f"{label} as loaded", type="pil", interactive=False, elem_id=f"{elem_id}_preview", height=200
        )
        file.change(functools.partial(preview_reference, name=label.lower()), file, preview, api_visibility="private")
        return file

    return {"Slider": Slider, "Number": Number, "Dropdown": Dropdown, "Reference": reference}


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


def launch(demo, session: Session, host: str = "127.0.0.1", port: int = 7860, block: bool = True) -> None:
    """Queue and start the app; gradio may serve the saved images wherever the output folder is."""
    demo.queue().launch(
        server_name=host,
        server_port=port,
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
) -> None:
    """Start the app and block until it is stopped."""
    session = Session(device=device, out_dir=out_dir)
    launch(build_app(session, model, base, refiner), session, host, port)
