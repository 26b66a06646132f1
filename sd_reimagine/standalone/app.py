"""The standalone Gradio app: a Reimagine tab built by the shared UI builder (`sd_reimagine.ui`)."""

# No `from __future__ import annotations` here: gradio reads the `gr.SelectData` annotation at run time.

import threading
from pathlib import Path

from ..errors import ReimagineError
from ..images import open_image
from ..schema import REFINER, REIMAGINE, SDXL
from ..ui import Controls, as_gradio_error, load_references, parameter_controls, reference_slots
from .session import Session


def build_app(session: Session, model: str | None = None, base: str | None = None, refiner: str | None = None):
    """The Blocks app; `model`, `base` and `refiner` become the defaults of those fields."""
    import gradio as gr

    group = REIMAGINE.replace(REIMAGINE["model"].with_default(model)) if model else REIMAGINE
    lock = threading.Lock()  # one job at a time on the loaded models

    with gr.Blocks(title="Reimagine", analytics_enabled=False) as demo:
        with gr.Tab("Reimagine", elem_id="reimagine_tab"):
            controls = Controls()
            with gr.Row():
                with gr.Column():
                    reference_slots(controls, "reimagine")
                    parameter_controls(controls, group, "reimagine")
                with gr.Column():
                    generate = gr.Button("Generate", variant="primary", elem_id="reimagine_generate")
                    gallery = gr.Gallery(label="Variations", elem_id="reimagine_gallery", columns=2)
                    infotext = gr.Textbox(label="Generation parameters", lines=4, elem_id="reimagine_infotext")
                    with gr.Row():
                        reimagine_this = gr.Button("Reimagine this", elem_id="reimagine_this")
                        refine_this = gr.Button("Refine (SDXL refiner)", elem_id="reimagine_refine")
            paths = gr.State([])
            selected = gr.State(0)
            taken = gr.State(None)  # path of the result taken with "Reimagine this" (lineage)

        def run(progress=gr.Progress(), taken_path=None, *args):  # noqa: B008 - gradio injects Progress by default
            try:
                pairs, values = controls.split(args)
                known = [open_image(Path(taken_path))] if taken_path else []
                with lock:
                    references = load_references(pairs, known)
                    job, saved = session.variations(references, values, progress=_reporter(progress, "Sampling"))
            except ReimagineError as exc:
                raise as_gradio_error(exc) from None
            items = [(str(p), f"seed {g.seed}") for p, g in zip(saved, job.images, strict=True)]
            first = job.images[0].infotext if job.images else ""
            return items, [str(p) for p in saved], first, 0

        def select(saved: list[str], evt: gr.SelectData):
            index = evt.index if isinstance(evt.index, int) else evt.index[0]
            return index, _infotext_of(saved, index)

        def take_as_reference(saved: list[str], index: int):
            if not saved:
                raise gr.Error("generate variations first, then pick one to reimagine")
            path = saved[min(index, len(saved) - 1)]
            return open_image(Path(path)).image_with_infotext(), path

        sdxl_controls, refiner_controls = sdxl_tab(session, lock, base, refiner)

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
        )
        generate.click(run, inputs=[taken, *controls.inputs()], outputs=[gallery, paths, infotext, selected])
        gallery.select(select, inputs=[paths], outputs=[selected, infotext])
        reimagine_this.click(take_as_reference, inputs=[paths, selected], outputs=[controls.images[0], taken])
    return demo


def sdxl_tab(
    session: Session, lock: threading.Lock, base: str | None, refiner: str | None
) -> tuple[Controls, Controls]:
    """The SDXL tab: base parameters and the refiner's, from the schema."""
    import gradio as gr

    base_group = SDXL.replace(SDXL["base"].with_default(base)) if base else SDXL
    refiner_group = REFINER.replace(REFINER["refiner"].with_default(refiner)) if refiner else REFINER
    base_controls, refiner_controls = Controls(), Controls()
    with gr.Tab("SDXL", elem_id="sdxl_tab"):
        with gr.Row():
            with gr.Column():
                parameter_controls(base_controls, base_group, "sdxl")
                with gr.Accordion("SDXL Refiner", open=True, elem_id="sdxl_refiner"):
                    parameter_controls(refiner_controls, refiner_group, "sdxl_refiner")
            with gr.Column():
                generate = gr.Button("Generate", variant="primary", elem_id="sdxl_generate")
                gallery = gr.Gallery(label="Images", elem_id="sdxl_gallery", columns=2)
                infotext = gr.Textbox(label="Generation parameters", lines=4, elem_id="sdxl_infotext")

    def run(progress=gr.Progress(), *args):  # noqa: B008 - gradio injects Progress by default
        count = len(base_controls.params)
        values = dict(zip(base_controls.params, args[:count], strict=True))
        refiner_values = dict(zip(refiner_controls.params, args[count:], strict=True))
        try:
            with lock:
                job, saved = session.sdxl(values, refiner_values, progress=_reporter(progress, "Base + refiner"))
        except ReimagineError as exc:
            raise as_gradio_error(exc) from None
        items = [(str(p), f"{g.label} seed {g.seed}") for p, g in zip(saved, job.all_images(), strict=True)]
        return items, job.images[0].infotext if job.images else ""

    inputs = [*base_controls.params.values(), *refiner_controls.params.values()]
    generate.click(run, inputs=inputs, outputs=[gallery, infotext])
    return base_controls, refiner_controls


def _reporter(progress, label: str):
    """progress(step, total) of a job -> the Gradio progress bar."""

    def report(step: int, total: int) -> None:
        progress((min(step, total), total), desc=label)

    return report


def _infotext_of(saved: list[str], index: int) -> str:
    if not saved or index >= len(saved):
        return ""
    return open_image(Path(saved[index])).infotext or ""


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
    demo = build_app(session, model, base, refiner)
    demo.queue().launch(server_name=host, server_port=port, show_error=True)
