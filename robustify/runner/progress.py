"""Progress for model calls: calls done, cache hits, errors and ETA.

The runner updates it once per finished call, possibly thousands of times a second, so
the disabled form is a no-op object and the others refresh at most a few times a second.
Three modes (:func:`progress_mode`):

* ``"bar"``: a tqdm bar on a terminal (a widget in Jupyter);
* ``"lines"``: when stderr is a log or a pipe (CI, ``nohup``, ``| tee``): one plain
  line every 30 s (``ROBUSTIFY_PROGRESS_EVERY`` seconds), starting only once a run has
  lasted 10 s, so short runs stay silent and long batch jobs never go quiet for minutes.
  A timer thread writes the line even while no call finishes (a slow model);
* ``"off"``: ``progress=False`` / ``--quiet``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, Callable, TextIO

__all__ = ["CallProgress", "progress_mode", "progress_every"]


def progress_every(default: float = 30.0) -> float:
    """Seconds between progress lines: ``ROBUSTIFY_PROGRESS_EVERY`` or ``default``."""
    raw = os.environ.get("ROBUSTIFY_PROGRESS_EVERY", "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        return default
    return value if value > 0 else default


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
        total: Calls planned (cache misses after dedupe); ``None`` while the runner is
            still planning (:meth:`set_total` gives it once known).
        mode: ``"bar"`` draws a bar, ``"lines"`` prints plain lines, ``"off"`` makes every
            method a cheap no-op (:func:`progress_mode` picks one from a user's choice).
        desc: Label.
        min_interval: Seconds between refreshes of the bar's hits/errors text.
        file: Where to write (default stderr).
        line_interval: Lines mode: seconds between lines (default :func:`progress_every`).
        quiet_start: Lines mode: seconds before the first line (short runs print nothing;
            default 10, or the line interval when that is shorter).
        clock: Monotonic clock (tests pass a fake one).
        timer: Lines mode: a thread writes due lines while no call finishes (default: on
            with the real clock).
    """

    def __init__(self, total: int | None, *, mode: str, desc: str = "calls",
                 min_interval: float = 0.25, file: TextIO | None = None,
                 line_interval: float | None = None, quiet_start: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 timer: bool | None = None) -> None:
        interval = line_interval if line_interval is not None else progress_every()
        if quiet_start is None:
            quiet_start = min(10.0, interval)
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
        self._line_interval = interval
        self._next_line = self._started + quiet_start
        self._lines = 0
        self._lock = threading.Lock()
        self._stop: threading.Event | None = None
        if mode == "lines" and (timer if timer is not None else clock is time.monotonic):
            self._stop = threading.Event()
            threading.Thread(target=self._tick, args=(self._stop,), daemon=True,
                             name="robustify-progress").start()
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, unit="call", dynamic_ncols=True,
                             mininterval=min_interval, leave=True, file=file)

    def set_total(self, total: int) -> None:
        """The number of calls planned, once the plan is complete."""
        with self._lock:
            self.total = total
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def _running(self) -> bool:
        """Calls are still to come (always, while the total is unknown)."""
        return self.total is None or self.calls < self.total

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
        elif self.mode == "lines" and self._running():
            with self._lock:
                if self._clock() >= self._next_line:
                    self._line()  # (the last call's line is close()'s)

    def _tick(self, stop: threading.Event) -> None:
        """The timer thread: write a due line although no call finished."""
        while not stop.wait(min(1.0, self._line_interval / 2)):
            with self._lock:
                if not stop.is_set() and self._running() \
                        and self._clock() >= self._next_line:
                    self._line()

    def skipped(self, count: int) -> None:
        """Planned calls that will not be made (``max_calls`` or a fatal backend error)."""
        if self._bar is not None and count:
            self._bar.total = max(self.calls, (self._bar.total or 0) - count)
            self._bar.refresh()
        elif self.mode == "lines" and self.total is not None:
            self.total = max(self.calls, self.total - count)

    def _line(self, final: bool = False) -> None:
        now = self._clock()
        elapsed = now - self._started
        if self.total is None:
            done = f"{self.calls} (still planning)"
        else:
            done = (f"{self.calls}/{self.total} "
                    f"({self.calls / self.total if self.total else 1.0:.0%})")
        text = (f"{self._desc}: {done}, cache hits {self.hits}, errors {self.errors}, "
                f"{_duration(elapsed)} elapsed")
        if not final and self.total is not None and 0 < self.calls < self.total:
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
        if self._stop is not None:
            self._stop.set()
            self._stop = None
        if self._bar is not None:
            self._postfix(force=True)
            self._bar.close()
            self._bar = None
        elif self.mode == "lines" and self._lines:
            with self._lock:
                self._line(final=True)  # a long run says when it is done
                self._lines = 0


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    minutes, sec = divmod(seconds, 60)
    return f"{minutes} min {sec:02d} s" if minutes else f"{sec} s"
