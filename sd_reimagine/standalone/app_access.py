"""Who may use the standalone app, and which server folders it shows: never wider than its user opened it.

- Sign-in: `serve --auth USER:PASSWORD` (or the REIMAGINE_AUTH environment variable, which keeps the password out
  of the process list) turns on gradio's own login for the page and every endpoint. Listening beyond this machine
  without it logs a warning: anyone who reaches the port runs jobs and sees the output folders.
- Folders: the app shows and serves only the output folder (`--out`) and the folders named with `--lineage-dir`,
  and the folders inside them; a client names no other (`lineage_ui.inside_allowed`), and picked files are served
  only from them (`app_lineage.served_copy`).
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import ParamError

AUTH_ENV = "REIMAGINE_AUTH"
AUTH_FORMAT = "USER:PASSWORD, both non-empty"
log = logging.getLogger("sd_reimagine")


def auth_from(value: str | None, environ: Mapping[str, str] = os.environ) -> tuple[str, str] | None:
    """(user, password) from `--auth` or else REIMAGINE_AUTH; None when neither is set. The password is never shown
    in a refusal."""
    text = value if value is not None else environ.get(AUTH_ENV)
    if text is None:
        return None
    user, sep, password = text.partition(":")
    if not (sep and user.strip() and password):
        name = "--auth" if value is not None else AUTH_ENV
        raise ParamError(name, f"{user.strip() or '?'}:{'…' if password else ''}", AUTH_FORMAT)
    return user.strip(), password


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only (localhost, 127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def warn_if_open(host: str, auth: tuple[str, str] | None) -> bool:
    """Log one warning when the app listens beyond this machine without sign-in; True when it did."""
    if auth is not None or is_loopback(host):
        return False
    log.warning(
        "Reimagine app: listening on %s without --auth: anyone who can reach this port can run jobs on this machine "
        "and see its output folders; start it with --auth USER:PASSWORD (or set %s)",
        host,
        AUTH_ENV,
    )
    return True


def allowed_folders(out_dir: Path, lineage_dirs: Sequence[Path] = ()) -> list[Path]:
    """The folders the app may show and serve, resolved: the output folder first, then each `--lineage-dir`."""
    for folder in lineage_dirs:
        if not Path(folder).expanduser().is_dir():
            raise ParamError("--lineage-dir", str(folder), "an existing folder of images")
    folders = [Path(out_dir).expanduser().resolve(), *(Path(f).expanduser().resolve() for f in lineage_dirs)]
    return list(dict.fromkeys(folders))
