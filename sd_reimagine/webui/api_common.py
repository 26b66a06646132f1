"""What every /reimagine/v1 route module of the WebUI family shares: the prefix, the host's parts the routes use,
FastAPI's 422 shape and the WebUI queue lock (`api.py`: the job routes; `batch.py`: the folder route)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PREFIX = "/reimagine/v1"


@dataclass(frozen=True)
class ApiHost:
    """What the routes take from a host profile (A1111's or Forge's)."""

    host_group: Callable[[], Any]
    run_reimagine: Callable[..., Any]
    loaded_checkpoint: Callable[[], Any]
    name: str = ""  # reported by /version when set
    # The post-step after a Reimagine job: (its JSON object) -> checked values, and its group; None: not on this host.
    refiner_values: Callable[[dict], dict] | None = None
    refiner_group: Callable[[], Any] | None = None


def unprocessable(loc: list[Any], message: str):
    """HTTP 422 shaped like FastAPI's validation errors, naming the field."""
    from fastapi import HTTPException

    return HTTPException(status_code=422, detail=[{"loc": loc, "msg": message, "type": "value_error"}])


def run_queued(job: Callable[[], Any], name: str) -> Any:
    """`job()` under the WebUI queue lock as one task of /sdapi/v1/progress named `name` (API routes)."""
    from modules import call_queue, progress, shared

    task_id = progress.create_task_id("reimagine")
    progress.add_task_to_queue(task_id)
    with call_queue.queue_lock:
        shared.state.begin(job=name)
        progress.start_task(task_id)
        try:
            return job()
        finally:
            progress.finish_task(task_id)
            shared.state.end()
            shared.total_tqdm.clear()
