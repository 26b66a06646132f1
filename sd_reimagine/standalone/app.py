"""The standalone Gradio app: a Reimagine tab built by the shared UI builder (`sd_reimagine.ui`)."""

# No `from __future__ import annotations` here: gradio reads the `gr.SelectData` annotation at run time.

import threading
from pathlib import Path

from ..errors import ReimagineError
from ..images import open_image
from ..schema import REIMAGINE
from ..ui import Controls, as_gradio_error, load_references, parameter_controls, reference_slots
from .session import Session


def build_app(session: Session, model: str | None = None):
    """The Blocks app; `model` becomes the default of the model field."""
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
                    reimagine_this = gr.Button("Reimagine this", elem_id="reimagine_this")
            paths = gr.State([])
            selected = gr.State(0)
            taken = gr.State(None)  # path of the result taken with "Reimagine this" (lineage)

        def run(taken_path, *args):
            try:
                pairs, values = controls.split(args)
                known = [open_image(Path(taken_path))] if taken_path else []
                with lock:
                    job, saved = session.variations(load_references(pairs, known), values)
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

        generate.click(run, inputs=[taken, *controls.inputs()], outputs=[gallery, paths, infotext, selected])
        gallery.select(select, inputs=[paths], outputs=[selected, infotext])
        reimagine_this.click(take_as_reference, inputs=[paths, selected], outputs=[controls.images[0], taken])
    return demo


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
) -> None:
    """Start the app and block until it is stopped."""
    session = Session(device=device, out_dir=out_dir)
    demo = build_app(session, model)
    demo.queue().launch(server_name=host, server_port=port, show_error=True)
