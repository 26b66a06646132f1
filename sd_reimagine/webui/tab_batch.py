"""The Reimagine tab's Batch section: input folder, output folder and "Generate batch", with the tab's own controls
(like img2img's Batch tab). Not built where the WebUI hides folder paths (`--hide-ui-dir-config`). The folder runs
through `webui.batch.run_folder_batch` with the tab's job runner (the host's `run_reimagine`)."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any

from ..errors import ReimagineError
from ..folder_batch_run import BatchSummary
from . import settings
from .batch import run_folder_batch

SHOWN = 8  # outputs shown in the gallery after a batch (the rest are in the output folder)
NOTE = (
    "One job per PNG/JPEG/WebP image in the input folder (not its subfolders), that image as reference 1 with the "
    "settings above (the reference slots are not used). Outputs are saved as PNG in the output folder; a rerun "
    "skips images already done there and completes those cut short. Interrupt stops after the current step."
)


@dataclass
class BatchSection:
    """The section's components."""

    input_dir: Any
    output_dir: Any
    button: Any


def batch_section() -> BatchSection | None:
    """The Batch accordion (build it inside the settings column); None with `--hide-ui-dir-config`."""
    import gradio as gr
    from modules import shared

    if getattr(shared.cmd_opts, "hide_ui_dir_config", False):
        return None
    with gr.Accordion("Batch: a folder at a time", open=False, elem_id="reimagine_batch"):
        gr.HTML(f"<p class='reimagine-batch-note'>{html.escape(NOTE)}</p>")
        input_dir = gr.Textbox(
            label="Input folder", placeholder="a folder of PNG/JPEG/WebP images", elem_id="reimagine_batch_input_dir"
        )
        output_dir = gr.Textbox(
            label="Output folder", placeholder=f"empty: {settings.outdir()}", elem_id="reimagine_batch_output_dir"
        )
        button = gr.Button("Generate batch", variant="primary", elem_id="reimagine_batch_generate")
    return BatchSection(input_dir, output_dir, button)


def wire_batch(section: BatchSection | None, controls, task_id, toprow, model, output, run, group) -> None:
    """Connect "Generate batch" to the tab's inputs and output panel (nothing when the section is hidden)."""
    if section is None:
        return
    from modules import call_queue

    handler = make_batch_generate(controls, run, group)
    section.button.click(
        fn=call_queue.wrap_gradio_gpu_call(handler, extra_outputs=[None, "", ""]),
        _js="submit_reimagine",
        inputs=[task_id, toprow.prompt, toprow.negative_prompt, model, section.input_dir, section.output_dir]
        + list(controls.params.values()),
        outputs=[output.gallery, output.generation_info, output.infotext, output.html_log],
        show_progress=False,
    )


def make_batch_generate(controls, run, group):
    """The click handler: (task id, prompt, negative, model, input folder, output folder, *params) -> panel."""

    def generate(id_task: str, prompt: str, negative_prompt: str, model: str | None, input_dir, output_dir, *params):
        import gradio as gr

        values = dict(zip(controls.params, params, strict=True))
        values.update(prompt=prompt or "", negative_prompt=negative_prompt or "", model=model or "")
        target = (output_dir or "").strip() or settings.outdir()
        try:
            summary = run_folder_batch((input_dir or "").strip(), target, values, _no_save(run), group)
        except ReimagineError as exc:
            gr.Warning(str(exc))
            return [], "", "", f"<div class='error'>{html.escape(str(exc))}</div>"
        images, infotexts = shown_outputs(summary)
        info = json.dumps({"infotexts": infotexts, "index_of_first_image": 0, "batch": summary.as_dict()})
        return images, info, "", summary_html(summary, target)

    return generate


def _no_save(run):
    def run_without_saving(references, values):
        return run(references, values, save=False)

    return run_without_saving


def shown_outputs(summary: BatchSummary) -> tuple[list, list[str]]:
    """The last SHOWN outputs with their infotexts (read back from the files the batch saved)."""
    from PIL import Image

    images, infotexts = [], []
    for path in summary.outputs[-SHOWN:]:
        with Image.open(path) as image:
            image.load()
            images.append(image.copy())
            infotexts.append(str(image.info.get("parameters", "")))
    return images, infotexts


def summary_html(summary: BatchSummary, target: str) -> str:
    """The summary line, the output folder and one line per failed file."""
    lines = [html.escape(summary.line()), f"Output folder: {html.escape(target)}"]
    lines += [f"failed: {html.escape(name)}: {html.escape(reason)}" for name, reason in summary.failed]
    return "<p class='reimagine-batch-summary'>" + "<br>\n".join(lines) + "</p>"
