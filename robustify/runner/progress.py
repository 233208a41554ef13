"""Progress for model calls: calls done, cache hits, errors and ETA.

The runner updates it once per finished call, possibly thousands of times a second, so
the disabled form is a no-op object and the others refresh at most a few times a second.
Three modes (:func:`progress_mode`):

* ``"bar"``: a tqdm bar on a terminal (a widget in Jupyter);
* ``"lines"``: when stderr is a log or a pipe (CI, ``nohup``, ``| tee``): one plain
  line every 30 s, starting only once a run has lasted 10 s, so short runs stay silent
  and long batch jobs never go quiet for minutes;
* ``"off"``: ``progress=False`` / ``--quiet``.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, TextIO

__all__ = ["CallProgress", "progress_mode"]


def _in_notebook() -> bool:
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return shell is not None and "ipykernel" in sys.modules


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def progress_mode(requested: bool | str = True, stream: TextIO | None = None) -> str:
    """``"bar"``, ``"lines"`` or ``"off"`` for a run (a mode name passes through)."""
    if isinstance(requested, str):
        if requested not in ("bar", "lines", "off"):
            raise ValueError(f"progress must be True, False, 'bar', 'lines' or 'off', "
                             f"got {requested!r}")
        return requested
    if not requested:
        return "off"
    if _is_terminal(stream if stream is not None else sys.stderr) or (
            stream is None and _in_notebook()):
        return "bar"
    return "lines"


class CallProgress:
    """Progress over planned model calls.

    Args:
        total: Calls planned (cache misses after dedupe).
        mode: ``"bar"`` draws a bar, ``"lines"`` prints plain lines, ``"off"`` makes every
            method a cheap no-op (:func:`progress_mode` picks one from a user's choice).
        desc: Label.
        min_interval: Seconds between refreshes of the bar's hits/errors text.
        file: Where to write (default stderr).
        line_interval: Lines mode: seconds between lines.
        quiet_start: Lines mode: seconds before the first line (short runs print nothing).
        clock: Monotonic clock (tests pass a fake one).
    """

    def __init__(self, total: int, *, mode: str, desc: str = "calls",
                 min_interval: float = 0.25, file: TextIO | None = None,
                 line_interval: float = 30.0, quiet_start: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.calls = 0
        self.errors = 0
        self.hits = 0
        if mode not in ("bar", "lines", "off"):
            raise ValueError(f"progress mode must be 'bar', 'lines' or 'off', got {mode!r}")
        self.mode = mode
        self._bar: Any = None
        self._min_interval = min_interval
        self._last = 0.0
        self._file = file
        self._desc = desc
        self._clock = clock
        self._started = clock()
        self._line_interval = line_interval
        self._next_line = self._started + quiet_start
        self._lines = 0
        if self.mode == "bar":
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
        elif (self.mode == "lines" and self.calls < self.total
              and self._clock() >= self._next_line):
            self._line()  # (the last call's line is close()'s)

    def skipped(self, count: int) -> None:
        """Planned calls that will not be made (``max_calls`` or a fatal backend error)."""
        if self._bar is not None and count:
            self._bar.total = max(self.calls, (self._bar.total or 0) - count)
            self._bar.refresh()
        elif self.mode == "lines":
            self.total = max(self.calls, self.total - count)

    def _line(self, final: bool = False) -> None:
        now = self._clock()
        elapsed = now - self._started
        share = self.calls / self.total if self.total else 1.0
        text = (f"{self._desc}: {self.calls}/{self.total} ({share:.0%}), "
                f"cache hits {self.hits}, errors {self.errors}, {_duration(elapsed)} elapsed")
        if not final and 0 < self.calls < self.total:
            text += f", about {_duration(elapsed / self.calls * (self.total - self.calls))} left"
        print(text, file=self._file if self._file is not None else sys.stderr, flush=True)
        self._lines += 1
        self._next_line = now + self._line_interval

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
        elif self.mode == "lines" and self._lines:
            self._line(final=True)  # a long run says when it is done
            self._lines = 0


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    minutes, sec = divmod(seconds, 60)
    return f"{minutes} min {sec:02d} s" if minutes else f"{sec} s"
