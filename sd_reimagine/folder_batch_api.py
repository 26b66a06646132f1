"""The folder batch over HTTP (`POST /reimagine/v1/batch`), host-neutral: the request, read strictly as the
variations request is, and the rule for server paths.

Rule for paths: the API reads and writes server folders only inside the one folder a WebUI setting names (empty:
every batch request is refused). `input_dir` and `output_dir` may be absolute or relative to that folder; both are
resolved (symlinks followed, `..` applied) before the check, so a link that leads out of the folder is refused too.
Inside the input folder no link is followed at all (`plan_folder(follow_links=False)`: each is passed over with its
reason, and inputs are opened with O_NOFOLLOW), so no file outside the allowed folder is ever read as an input.
A refusal is PathRefused (HTTP 403); a bad value is RequestError (HTTP 422), also an output folder that cannot be
created or written, before any model work.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .api_request import RequestError
from .errors import ParamError, ReimagineError
from .schema import ParamGroup

PATH_FIELDS = ("input_dir", "output_dir")


class PathRefused(ReimagineError):
    """A server path the API may not use: `loc` is the field in the body."""

    def __init__(self, loc: list[Any], message: str):
        self.loc = ["body", *loc]
        super().__init__(message)


def batch_json_schema(group: ParamGroup) -> dict[str, Any]:
    """The parameters' JSON schema plus the two folders (required)."""
    schema = group.json_schema()
    schema["title"] = f"{group.name} batch"
    for name, what in zip(PATH_FIELDS, ("images to run, one job each", "where the outputs go"), strict=True):
        description = f"Server folder of the {what}: absolute, or relative to the folder the setting allows."
        schema["properties"][name] = {"type": "string", "minLength": 1, "description": description}
    schema["required"] = list(PATH_FIELDS)
    return schema


def parse_batch_request(body: Any, group: ParamGroup) -> tuple[str, str, dict[str, Any]]:
    """(input_dir, output_dir, checked values) of a request body; RequestError names the bad field."""
    if not isinstance(body, Mapping):
        raise RequestError([], f"the request body must be a JSON object, not {type(body).__name__}")
    data = dict(body)
    if "images" in data:
        raise RequestError(["images"], "images is not allowed in a batch: the images are the files of input_dir")
    folders = [data.pop(name, None) for name in PATH_FIELDS]
    for name, value in zip(PATH_FIELDS, folders, strict=True):
        if not isinstance(value, str) or not value.strip():
            raise RequestError([name], f"{name}={value!r} is not allowed: a server folder path (a non-empty string)")
    try:
        values = group.validate(data, strict=True)
    except ParamError as exc:
        raise RequestError([exc.name], str(exc)) from None
    return folders[0], folders[1], values


def allowed_folders(input_dir: str, output_dir: str, allowed: str, setting: str) -> tuple[Path, Path]:
    """Both folders resolved, when they lie inside the `allowed` folder; else PathRefused naming `setting`."""
    if not str(allowed or "").strip():
        raise PathRefused(
            [],
            f"batch folders are refused: the setting {setting} names no folder "
            "(set it in Settings > Reimagine to the one folder the API may read batches from and write them to)",
        )
    root = Path(allowed).expanduser().resolve()
    if not root.is_dir():
        raise PathRefused([], f"batch folders are refused: the setting {setting} names {root}, which is not a folder")
    return _inside(PATH_FIELDS[0], input_dir, root, setting), _inside(PATH_FIELDS[1], output_dir, root, setting)


def _inside(name: str, value: str, root: Path, setting: str) -> Path:
    path = Path(value).expanduser()
    resolved = (path if path.is_absolute() else root / path).resolve()
    if resolved != root and root not in resolved.parents:
        raise PathRefused([name], f"{name}={value!r} is not allowed: a folder inside {root} (the setting {setting})")
    return resolved
