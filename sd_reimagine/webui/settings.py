"""The extension's WebUI settings (section "Reimagine") and their getters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..refiner_plan import RESIDENCY_AUTO, RESIDENCY_BATCH, RESIDENCY_CHOICES

SECTION = ("reimagine", "Reimagine")
DEFAULT_MODEL = "reimagine_default_model"
BATCH_SIZE = "reimagine_batch_size"
OUTDIR = "reimagine_outdir"
REFINER_RESIDENCY = "reimagine_refiner_residency"
REFINER_ONE_RESIDENCY = "reimagine_refiner_one_residency"  # the earlier on/off setting: off still means batch by batch
BATCH_API_DIR = "reimagine_batch_api_dir"
BATCH_API_DIR_LABEL = "Folder the API may read batches from (and write them to; empty: /reimagine/v1/batch is refused)"


def on_ui_settings() -> None:
    """Register the options (called from the script's on_ui_settings callback)."""
    import gradio as gr
    from modules import shared

    from .checkpoint_lookup import unclip_titles

    shared.opts.add_option(
        DEFAULT_MODEL,
        shared.OptionInfo(
            "",
            "Default unCLIP checkpoint (empty: the first one found)",
            gr.Dropdown,
            lambda: {"choices": ["", *unclip_titles()]},
            refresh=None,
            section=SECTION,
        ),
    )
    shared.opts.add_option(
        BATCH_SIZE,
        shared.OptionInfo(
            1,
            "Images sampled together (1 = each seed reproduces bit-exactly alone; more is faster on a GPU)",
            gr.Slider,
            {"minimum": 1, "maximum": 8, "step": 1},
            section=SECTION,
        ),
    )
    shared.opts.add_option(
        REFINER_RESIDENCY,
        shared.OptionInfo(
            RESIDENCY_AUTO,
            "SDXL Refiner post-step with batch count > 1: refine every batch in one refiner load after the last base "
            "batch, or load the refiner for every batch (Automatic: one load where a swap would load a checkpoint, "
            "i.e. 'Maximum number of checkpoints loaded at the same time' is too small to keep both models)",
            gr.Radio,
            {"choices": list(RESIDENCY_CHOICES)},
            section=SECTION,
        ),
    )
    label = "Output folder for Reimagine images (empty: outputs/reimagine-images)"
    shared.opts.add_option(OUTDIR, shared.OptionInfo("", label, component_args=shared.hide_dirs, section=SECTION))
    # Like the WebUI's own output folders, unsettable under --hide-ui-dir-config (the Lineage view scans it).
    restricted = getattr(shared.opts, "restricted_opts", None)
    if isinstance(restricted, set):
        restricted.add(OUTDIR)
    # Not settable through the API (restrict_api), as the WebUI does for its own URL options: the folder is the
    # server owner's grant, and hidden with --hide-ui-dir-config like the WebUI's own folder options.
    shared.opts.add_option(
        BATCH_API_DIR,
        shared.OptionInfo("", BATCH_API_DIR_LABEL, component_args=shared.hide_dirs, section=SECTION, restrict_api=True),
    )


def get(name: str, default: Any = None) -> Any:
    """An option's value, or `default` before the options are registered."""
    from modules import shared

    return shared.opts.data.get(name, default)


def default_model() -> str:
    """The unCLIP checkpoint a job uses when none is given: the setting, else the first unCLIP checkpoint found."""
    from ..errors import ParamError
    from .checkpoint_lookup import unclip_titles

    chosen = str(get(DEFAULT_MODEL, "") or "")
    if chosen:
        return chosen
    titles = unclip_titles()
    if not titles:
        raise ParamError("model", "", "an unCLIP checkpoint (none found in models/Stable-diffusion)")
    return titles[0]


def batch_limit() -> int:
    """Images sampled together at most (the setting); the core's plan picks the batches."""
    return max(1, int(get(BATCH_SIZE, 1) or 1))


def refiner_residency() -> str:
    """The residency setting (a RESIDENCY_CHOICES value)."""
    from modules import shared

    return residency_from(shared.opts.data)


def residency_from(data: Mapping[str, Any]) -> str:
    """The residency setting in the WebUI's saved options; the earlier checkbox set off still means batch by batch."""
    chosen = data.get(REFINER_RESIDENCY)
    if chosen in RESIDENCY_CHOICES:
        return chosen
    return RESIDENCY_BATCH if data.get(REFINER_ONE_RESIDENCY, True) is False else RESIDENCY_AUTO


def outdir() -> str:
    """Where the tab saves images."""
    import os

    from modules import paths_internal, shared

    default = os.path.join(paths_internal.default_output_dir, "reimagine-images")
    return get(OUTDIR, "") or shared.opts.outdir_samples or default


def batch_api_dir() -> str:
    """The one folder the API may run batches in ("" = none)."""
    return str(get(BATCH_API_DIR, "") or "")
