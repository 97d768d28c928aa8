"""A plain-text progress bar on stderr: redrawn in place on a terminal, one line per change
otherwise (a CI log, a file)."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


class Progress:
    def __init__(self, label: str, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.label, self.total, self.width = label, total, width
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.done = self.failed = self.active = 0
        self.peak_active = 0
        self.start = time.monotonic()
        self._lock = threading.Lock()
        self._last = ""

    def started(self) -> None:
        with self._lock:
            self.active += 1
            self.peak_active = max(self.peak_active, self.active)
            self._draw()

    def finished(self, ok: bool) -> None:
        with self._lock:
            self.active -= 1
            if ok:
                self.done += 1
            else:
                self.failed += 1
            self._draw()

    def line(self) -> str:
        finished = self.done + self.failed
        filled = self.width * finished // self.total if self.total else self.width
        bar = "#" * filled + "-" * (self.width - filled)
        return (
            f"{self.label} [{bar}] {finished}/{self.total}  ok {self.done}  failed {self.failed}  "
            f"in progress {self.active}  {time.monotonic() - self.start:.1f}s"
        )

    def _draw(self) -> None:
        text = self.line()
        if self.tty:
            self.stream.write("\r" + text)
        elif text.split("  in progress")[0] != self._last.split("  in progress")[0]:
            self.stream.write(text + "\n")
        self._last = text
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
