"""A one-line progress bar on stderr for the import commands (no dependency needed)."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    def __init__(self, stream=None, *, width: int = 30, interval: float = 0.2):
        self.stream = stream or sys.stderr
        self.width = width
        self.interval = interval
        self.last = 0.0

    def __call__(self, processed: int, total: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.interval:
            return
        self.last = now
        fraction = min(1.0, processed / total) if total else 0.0
        filled = int(fraction * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r[{bar}] {fraction:6.1%}")
        self.stream.flush()

    def finish(self) -> None:
        self(1, 1, force=True)
        self.stream.write("\n")
