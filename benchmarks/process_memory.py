"""Memory and CPU time of another process (a WebUI) while a job runs, read from /proc.

VmHWM is the process's lifetime peak, so a per-job peak is sampled: VmRSS and RssAnon (anonymous memory, what the
kernel cannot drop; file pages of memory-mapped checkpoints are not in it) every `interval` seconds. With a ceiling
the sampler kills the process once RssAnon passes it, so that one job cannot take the machine down.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

GIB_KIB = 2**20


def status_kib(pid: int, field: str) -> int:
    """One `Name: N kB` field of /proc/PID/status, in KiB (0 when the process is gone or lacks it)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (and its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PeakSampler:
    """`with PeakSampler(pid, kill_above_gib=18) as peak:` ... `peak.rss_gib`, `peak.anon_gib`, `peak.killed`."""

    def __init__(self, pid: int, kill_above_gib: float | None = None, interval: float = 0.2) -> None:
        self.pid, self.ceiling_kib, self.interval = pid, (kill_above_gib or 0) * GIB_KIB, interval
        self.rss_kib = self.anon_kib = 0
        self.killed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @property
    def rss_gib(self) -> float:
        return self.rss_kib / GIB_KIB

    @property
    def anon_gib(self) -> float:
        return self.anon_kib / GIB_KIB

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.rss_kib = max(self.rss_kib, status_kib(self.pid, "VmRSS"))
            self.anon_kib = max(self.anon_kib, status_kib(self.pid, "RssAnon"))
            if self.ceiling_kib and self.anon_kib > self.ceiling_kib and not self.killed:
                self.killed = True
                os.kill(self.pid, signal.SIGKILL)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
