"""A cheap progress bar for model calls: calls done, cache hits, errors and ETA.

The runner updates it once per finished call, possibly thousands of times a second, so
the disabled bar is a no-op object and the enabled one refreshes its text at most a few
times a second. It is off when stderr is not a terminal (CI logs, pipes) or when the
caller passes ``progress=False`` / ``--quiet``.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["CallProgress", "progress_enabled"]


def progress_enabled(requested: bool = True, stream: TextIO | None = None) -> bool:
    """True when a bar was asked for and ``stream`` (default stderr) is a terminal."""
    if not requested:
        return False
    stream = stream if stream is not None else sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


class CallProgress:
    """Progress over planned model calls.

    Args:
        total: Calls planned (cache misses after dedupe).
        enabled: Draw a bar; when False every method is a cheap no-op.
        desc: Bar label.
        min_interval: Seconds between refreshes of the hits/errors text.
        file: Where to draw (default stderr).
    """

    def __init__(self, total: int, *, enabled: bool, desc: str = "calls",
                 min_interval: float = 0.25, file: TextIO | None = None) -> None:
        self.total = total
        self.calls = 0
        self.errors = 0
        self.hits = 0
        self.enabled = enabled
        self._bar: Any = None
        self._min_interval = min_interval
        self._last = 0.0
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, unit="call", dynamic_ncols=True,
                             mininterval=min_interval, leave=True, file=file)

    def cache_hits(self, count: int) -> None:
        """Record answers served from the cache or by dedupe (no call made)."""
        self.hits += count
        self._postfix(force=True)

    def call_done(self, *, error: bool) -> None:
        """Record one finished call (successful or not)."""
        self.calls += 1
        if error:
            self.errors += 1
        if self._bar is not None:
            self._bar.update(1)
            self._postfix()

    def skipped(self, count: int) -> None:
        """Planned calls that will not be made (``max_calls`` or a fatal backend error)."""
        if self._bar is not None and count:
            self._bar.total = max(self.calls, (self._bar.total or 0) - count)
            self._bar.refresh()

    def _postfix(self, force: bool = False) -> None:
        if self._bar is None:
            return
        now = time.monotonic()
        if force or now - self._last >= self._min_interval:
            self._last = now
            self._bar.set_postfix_str(f"hits={self.hits} errors={self.errors}", refresh=False)

    def close(self) -> None:
        """Draw the final state and release the terminal line."""
        if self._bar is not None:
            self._postfix(force=True)
            self._bar.close()
            self._bar = None
