"""A folder at a time in the WebUI: the tab's Batch section and `POST /reimagine/v1/batch` run the core's folder plan
(`folder_batch`) with the tab's own job runner, one job per image.

- Runner: the host's `run_reimagine` (or the Forge tab's), called with save=False; every output is then saved here
  through the WebUI's `images.save_image` into the chosen folder, always as PNG (the source tag is a PNG text chunk)
  under the core's name, whatever the WebUI's samples settings say, so `on_before_image_saved` callbacks run as for
  any WebUI image (the lineage's `reimagine-hash` is added there) and `reimagine-source` rides along in
  `existing_info`. The WebUI's "Save text information ... as chunks to png files" must stay on for resume.
- Progress: `shared.state.job_count` is the number of sampling batches over the whole folder, which the WebUI's
  processing counts on through `job_no`; `textinfo` says which image of how many. (Forge's runner counts per image.)
- Interrupt: `shared.state.interrupted` ends the current job after its step (the WebUI keeps that image; it is
  tagged unfinished) and the batch stops; everything saved stays.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..folder_batch import plan_folder
from ..folder_batch_run import BatchHost, BatchProgress, BatchSummary, run_folder
from ..reimagine_plan import GeneratedImage
from ..schema import ParamGroup
from . import settings

UI_NAMES = ("Input folder", "Output folder")


def save_png(image: GeneratedImage, folder: Path, stem: str, chunks: dict[str, str]) -> Path:
    """One output saved by the WebUI as `<folder>/<stem>.png`, its infotext and `chunks` as text chunks."""
    from modules import images

    path, _ = images.save_image(
        image.image,
        str(folder),
        "",
        seed=image.seed,
        extension="png",
        info=image.infotext,
        existing_info=dict(chunks),
        forced_filename=stem,
        save_to_dirs=False,
    )
    return Path(path)


def state_progress(where: BatchProgress) -> None:
    """The folder position in the WebUI's progress text (steps and batches are the processing's own)."""
    from modules import shared

    if where.step == 0:
        shared.state.textinfo = f"Reimagine batch: image {where.image} of {where.images} ({where.name})"
        shared.state.job_count = max(1, where.jobs, shared.state.job_no)


def interrupted() -> bool:
    from modules import shared

    return bool(shared.state.interrupted or getattr(shared.state, "stopping_generation", False))


def run_folder_batch(
    input_dir: str | Path,
    output_dir: str | Path,
    values: dict[str, Any],
    run: Callable[..., Any],
    group: ParamGroup,
    names: tuple[str, str] = UI_NAMES,
    follow_links: bool = True,
) -> BatchSummary:
    """Plan and run a folder inside a WebUI job (shared.state begun by the caller); `run(references, values)` is the
    host's job runner without saving. Errors about the folders name them (`names`); `follow_links` False (the API)
    passes over every link in the input folder, so none leads out of the folder the setting allows."""
    from modules import shared

    values = group.validate(values)
    values["model"] = values["model"] or settings.default_model()
    plan = plan_folder(input_dir, output_dir, values, names, follow_links)
    limit = settings.batch_limit()
    shared.state.job_count = max(1, plan.jobs(limit, uneven=False))
    host = BatchHost(lambda references, job_values, *_: run(references, job_values), save_png, limit, uneven=False)
    summary = run_folder(plan, values, host, progress=state_progress, should_stop=interrupted)
    print(summary.line())
    return summary


def run_locked(job: Callable[[], BatchSummary]) -> BatchSummary:
    """Run a batch for the API under the WebUI queue lock, visible in /sdapi/v1/progress."""
    from .api_common import run_queued

    return run_queued(job, "reimagine-batch")


def register_route(app, host) -> None:
    """`POST /reimagine/v1/batch` on the WebUI's FastAPI app; `host`: the profile's ApiHost (A1111's or Forge's)."""
    from fastapi import Body, HTTPException

    from ..api_request import RequestError
    from ..errors import ReimagineError
    from ..folder_batch_api import PATH_FIELDS, PathRefused, allowed_folders, batch_json_schema, parse_batch_request
    from .api_common import PREFIX, unprocessable

    setting = f"'{settings.BATCH_API_DIR_LABEL}' ({settings.BATCH_API_DIR})"

    def batch(body: Any = Body(...)) -> dict[str, Any]:  # noqa: B008 - FastAPI's way to take the raw JSON
        group = host.host_group()
        try:
            input_dir, output_dir, values = parse_batch_request(body, group)
            source, target = allowed_folders(input_dir, output_dir, settings.batch_api_dir(), setting)
            summary = run_locked(
                lambda: run_folder_batch(
                    source, target, values, _api_runner(host), group, PATH_FIELDS, follow_links=False
                )
            )
        except PathRefused as exc:
            raise HTTPException(403, detail=[{"loc": exc.loc, "msg": str(exc), "type": "permission_error"}]) from None
        except RequestError as exc:
            raise unprocessable(exc.loc, str(exc)) from None
        except ReimagineError as exc:
            raise unprocessable(_location(exc), str(exc)) from None
        return {**summary.as_dict(), "output_dir": str(target)}

    request_body = {"required": True, "content": {"application/json": {"schema": batch_json_schema(host.host_group())}}}
    app.add_api_route(f"{PREFIX}/batch", batch, methods=["POST"], openapi_extra={"requestBody": request_body})


def _api_runner(host) -> Callable[..., Any]:
    def run(references, values):
        return host.run_reimagine(references, values, save=False, is_api=True)

    return run


def _location(exc) -> list[Any]:
    """The body field of a job error (folders by their API names, parameters by theirs)."""
    from ..errors import ParamError

    return ["body", exc.name] if isinstance(exc, ParamError) else ["body"]
