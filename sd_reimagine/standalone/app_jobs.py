"""The app's jobs: one at a time on the session's models, each in a worker thread under a stop flag that its steps
read. Stop sets the flag, and so do a cancelled event and a client that is gone, so a job ends at its next step and
frees the model lock; a stopped job returns what it made."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from typing import TypeVar

from ..errors import ReimagineError
from ..ui import as_gradio_error
from .session import Session

T = TypeVar("T")


class Jobs:
    """The app's jobs on one session's models: one at a time (`lock`), each under a stop flag (`stops`)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.lock = threading.Lock()
        self.stops = StopFlags()

    async def run(self, key: tuple, work: Callable[[Callable[[], bool]], T]) -> T:
        """`work(should_stop)` in a worker thread under a new stop flag for `key`; user errors become gr.Error."""
        key, flag = self.stops.new(key)
        try:
            return await run_stoppable(work, flag)
        except ReimagineError as exc:
            raise as_gradio_error(exc) from None
        finally:
            self.stops.drop(key, flag)


class StopFlags:
    """The stop flag of each running job, by (browser session, tab): Stop sets it, the job's steps read it."""

    def __init__(self) -> None:
        self._flags: dict[tuple, threading.Event] = {}
        self._guard = threading.Lock()

    def new(self, key: tuple) -> tuple[tuple, threading.Event]:
        flag = threading.Event()
        with self._guard:
            self._flags[key] = flag
        return key, flag

    def stop(self, *keys: tuple) -> None:
        with self._guard:
            flags = [self._flags[key] for key in keys if key in self._flags]
        for flag in flags:
            flag.set()

    def stop_session(self, session_hash: str) -> None:
        """Stop every job of one browser session."""
        with self._guard:
            flags = [flag for key, flag in self._flags.items() if key[0] == session_hash]
        for flag in flags:
            flag.set()

    def drop(self, key: tuple, flag: threading.Event) -> None:
        with self._guard:
            if self._flags.get(key) is flag:  # a later job of the same session may have replaced it
                del self._flags[key]


async def run_stoppable(work: Callable[[Callable[[], bool]], T], stop: threading.Event) -> T:
    """Run `work(should_stop)` in a worker thread and await it; a cancelled event stops it at its next step.

    gradio cancels an event by cancelling its task (`/cancel`, a client's `job.cancel()`), which cannot stop a
    thread: the CancelledError lands here and sets `stop`, so the job ends at its next step and frees the lock.
    """
    loop = asyncio.get_running_loop()
    # The thread runs in a copy of this context: gr.Progress finds its event through context variables.
    future = loop.run_in_executor(None, contextvars.copy_context().run, work, stop.is_set)
    try:
        return await future
    except asyncio.CancelledError:
        stop.set()
        raise
