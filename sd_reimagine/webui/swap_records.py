"""The swap records both WebUI hosts keep (`GET /reimagine/v1/swaps`, the `swap_s`/`restore_s` job timings)."""

from __future__ import annotations

from typing import Any

SWAP_TIMES: list[dict[str, Any]] = []  # {"number", "action": "swap"|"restore"|"recover", "to", "seconds"}
MAX_SWAP_RECORDS = 200
_count = [0]  # records ever made: `number` of the newest (clients ask for those after a number they saw)


def record_swap(action: str, title: str, seconds: float) -> None:
    """Keep one record (the newest MAX_SWAP_RECORDS are kept) and print it to the WebUI's console."""
    _count[0] += 1
    SWAP_TIMES.append({"number": _count[0], "action": action, "to": title, "seconds": round(seconds, 4)})
    del SWAP_TIMES[:-MAX_SWAP_RECORDS]
    print(f"Reimagine: {action} to {title} in {seconds:.3f} s")


def swap_times_after(number: int = 0) -> dict[str, Any]:
    """The swap records numbered above `number` (the newest 200 at most) and the newest number."""
    return {"last": _count[0], "swaps": [dict(r) for r in SWAP_TIMES if r["number"] > number]}


def load_failure(error: BaseException) -> str:
    """One line naming why a checkpoint load failed (the error's type and first line)."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__
