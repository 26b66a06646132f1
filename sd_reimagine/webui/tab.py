"""The Reimagine tab in both WebUI hosts: the shared schema controls, the WebUI's prompt row, output panel, progress
and paste-back, around the host's job runner and parameter group."""

# No `from __future__ import annotations`: gradio reads the gr.SelectData annotation of the select handler.

import html
import json
from typing import Any

from ..errors import ReimagineError
from ..infotext import NOISE_LEVEL
from ..ui import Controls, load_references, parameter_controls, reference_slots
from . import refiner_ui
from .checkpoint_lookup import reimagine_titles
from .settings import outdir
from .tab_batch import batch_section, wire_batch
from .tab_lineage import lineage_accordion

TAB = "reimagine"
PROMPT_PARAMS = ("model", "prompt", "negative_prompt")
PASTE_KEYS = {
    "steps": "Steps",
    "sampler": "Sampler",
    "schedule_type": "Schedule type",
    "cfg_scale": "CFG scale",
    "seed": "Seed",
    "width": "Size-1",
    "height": "Size-2",
    "noise_level": NOISE_LEVEL,
    "image_text_mix": "Reimagine image/text mix",
    "structure_strength": "Reimagine structure strength",
}


def default_model_choice(titles: list[str]) -> str | None:
    """The dropdown's initial value: the setting when it is listed, else the first unCLIP checkpoint."""
    from . import settings

    chosen = settings.get(settings.DEFAULT_MODEL, "")
    return chosen if chosen in titles else (titles[0] if titles else None)


def generation_info(result) -> str:
    """The JSON the WebUI's output panel keeps per job (infotexts per image, for the gallery and send-to buttons)."""
    return json.dumps(
        {
            "infotexts": result.infotexts,
            "all_seeds": result.seeds,
            "index_of_first_image": 0,
            "parameters": result.values,
            "timings": result.timings,
        }
    )


def infotext_html(text: str) -> str:
    return "<p>" + "<br>\n".join(html.escape(line) for line in text.split("\n")) + "</p>"


def make_generate(controls: Controls, run, refiner_count: int = 0):
    """The click handler: (task id, prompt, negative, model, *controls, *refiner controls) -> gallery, info json,
    info html, log html.

    run: the host's job runner (`run_reimagine`, or Forge's on its main thread);
    refiner_count: how many trailing arguments are the SDXL Refiner post-step's controls (0: none in this tab)."""

    def generate(id_task: str, prompt: str, negative_prompt: str, model: str | None, *args: Any):
        import gradio as gr
        from modules import shared

        split = len(args) - refiner_count
        pairs, values = controls.split(args[:split])
        values.update(prompt=prompt or "", negative_prompt=negative_prompt or "", model=model or "")
        try:
            extra = post_step_values(args[split:]) if refiner_count else {}
            result = run(load_references(pairs), values, save=bool(shared.opts.samples_save), **extra)
        except ReimagineError as exc:
            gr.Warning(str(exc))
            return [], "", "", f"<div class='error'>{html.escape(str(exc))}</div>"
        first = result.infotexts[0] if result.infotexts else ""
        return [g.image for g in result.images], generation_info(result), infotext_html(first), ""

    return generate


def post_step_values(args) -> dict[str, Any]:
    """{"refiner": checked post-step values} when the tab's post-step accordion is on, else {}."""
    from .refiner import script_values

    values = script_values(list(args))
    return {"refiner": values} if values["enabled"] else {}


def selected_infotext(info_json: str, index: int) -> tuple[int, str]:
    """(index, infotext html) of the gallery image the user selected."""
    try:
        infotexts = json.loads(info_json or "{}").get("infotexts", [])
    except json.JSONDecodeError:
        infotexts = []
    return index, infotext_html(infotexts[index]) if 0 <= index < len(infotexts) else ""


def take_as_reference(gallery: list, info_json: str, index: int):
    """The selected gallery image as reference 1, carrying its infotext so the next job records the lineage."""
    import gradio as gr
    from modules import infotext_utils

    if not gallery:
        raise gr.Error("generate variations first, then pick one to reimagine")
    index = min(max(int(index or 0), 0), len(gallery) - 1)
    image = infotext_utils.image_from_url_text(gallery[index])
    try:
        infotexts = json.loads(info_json or "{}").get("infotexts", [])
    except json.JSONDecodeError:
        infotexts = []
    if index < len(infotexts):
        image.info["parameters"] = infotexts[index]
    return image


def build_tab(run, group, titles_of=reimagine_titles, post_step: bool = True):
    """The Blocks of the tab (for on_ui_tabs) around the host's job runner `run` and parameter group `group`;
    post_step: the SDXL Refiner post-step accordion under the controls."""
    import gradio as gr
    from modules import call_queue, ui_common, ui_toprow

    controls = Controls()
    with gr.Blocks(analytics_enabled=False) as tab:
        toprow = ui_toprow.Toprow(is_img2img=False, id_part=TAB)
        task_id = gr.Textbox(visible=False, elem_id="reimagine_task_id")
        with gr.Row(elem_id="reimagine_main", equal_height=False):
            with gr.Column(elem_id="reimagine_settings"):
                model = model_dropdown(titles_of)
                reference_slots(controls, TAB)
                parameter_controls(controls, group, TAB, skip=PROMPT_PARAMS)
                # The post-step after the variations: the txt2img accordion's controls, its own elem ids.
                refiner_inputs = refiner_ui.build_ui("reimagine_tab_refiner")[0] if post_step else []
                batch = batch_section()
            with gr.Column(elem_id="reimagine_output_column"):
                output = ui_common.create_output_panel(TAB, outdir())
                reimagine_this = gr.Button("Reimagine this", elem_id="reimagine_this")
                lineage_accordion(controls.images[0])
        selected = gr.State(0)

        submit = dict(
            fn=call_queue.wrap_gradio_gpu_call(
                make_generate(controls, run, len(refiner_inputs)), extra_outputs=[None, "", ""]
            ),
            _js="submit_reimagine",
            inputs=[task_id, toprow.prompt, toprow.negative_prompt, model, *controls.inputs(), *refiner_inputs],
            outputs=[output.gallery, output.generation_info, output.infotext, output.html_log],
            show_progress=False,
        )
        toprow.prompt.submit(**submit)
        toprow.submit.click(**submit)
        wire_batch(batch, controls, task_id, toprow, model, output, run, group)
        wire_selection(output, reimagine_this, selected, controls)
        register_paste(toprow, controls)
    return tab


def model_dropdown(titles_of):
    """The checkpoint dropdown (unCLIP, then SDXL bases) with the WebUI's refresh button."""
    import gradio as gr
    from modules import sd_models, ui_common

    titles = titles_of()
    with gr.Row(elem_id="reimagine_model_row"):
        model = gr.Dropdown(
            choices=titles,
            value=default_model_choice(titles),
            label="unCLIP or SDXL checkpoint",
            elem_id="reimagine_model",
            info="unCLIP-H/L, or an SDXL base for Reimagine XL (told from their headers); loaded for "
            "the job, your model is restored afterwards.",
        )
        ui_common.create_refresh_button(
            model, sd_models.list_models, lambda: {"choices": titles_of()}, "reimagine_model_refresh"
        )
    return model


def wire_selection(output, reimagine_this, selected, controls: Controls) -> None:
    """Selecting a gallery image shows its infotext; "Reimagine this" makes it reference 1."""
    import gradio as gr

    def on_select(info_json: str, evt: gr.SelectData):
        return selected_infotext(info_json, evt.index if isinstance(evt.index, int) else evt.index[0])

    output.gallery.select(
        on_select, inputs=[output.generation_info], outputs=[selected, output.infotext], show_progress=False
    )
    reimagine_this.click(
        take_as_reference, inputs=[output.gallery, output.generation_info, selected], outputs=[controls.images[0]]
    )


def register_paste(toprow, controls: Controls) -> None:
    """Paste-back of infotext into the tab's prompt row and controls (the WebUI's paste button and send-to)."""
    from modules import infotext_utils

    fields = [(toprow.prompt, "Prompt"), (toprow.negative_prompt, "Negative prompt")]
    fields += [(controls.params[name], key) for name, key in PASTE_KEYS.items() if name in controls.params]
    infotext_utils.add_paste_fields(TAB, controls.images[0], fields)
    infotext_utils.register_paste_params_button(
        infotext_utils.ParamBinding(paste_button=toprow.paste, tabname=TAB, source_text_component=toprow.prompt)
    )
