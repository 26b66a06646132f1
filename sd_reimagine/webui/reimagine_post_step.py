"""The SDXL Refiner post-step after a Reimagine job: the same AlwaysVisible script the txt2img accordion runs,
attached to the job's processing on its own, so the refiner pass, swaps, one residency per job, infotext and kept
base images are the post-step's own (`webui.refiner`), planned by the core as for txt2img."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ReimagineError

POST_STEP_TITLE = "Reimagine SDXL Refiner"


def post_step_script():
    """The loaded post-step script (an instance the WebUI made for txt2img)."""
    from modules import scripts

    runner = getattr(scripts, "scripts_txt2img", None)
    for script in getattr(runner, "alwayson_scripts", []):
        if script.title() == POST_STEP_TITLE:
            return script
    raise ReimagineError("refiner: the SDXL Refiner post-step script is not loaded in this WebUI")


def attach_post_step(p, refiner_values: Mapping[str, Any] | None) -> None:
    """Run the post-step in this processing: a script runner holding only the post-step, its values as the API's
    dict form (no other extension's script runs in a Reimagine job)."""
    if not refiner_values or not refiner_values.get("enabled"):
        return
    from modules import scripts

    script = post_step_script()
    runner = scripts.ScriptRunner()
    runner.scripts.append(script)
    runner.alwayson_scripts.append(script)
    args: list[Any] = [None] * script.args_to
    args[script.args_from] = dict(refiner_values)
    p.scripts, p.script_args = runner, args


def image_seeds(count: int, seeds: list[int]) -> list[int]:
    """The seed of each returned image: refined images in seed order, then the kept base images in the same order."""
    return [seeds[i % len(seeds)] for i in range(count)] if seeds else []
