"""Draw a report's charts in a second Python process while this one writes the rest.

The run report's five charts, drawn as PNG and SVG, cost about 0.7 s of CPU after the last
answer, and matplotlib's imports about as much again; in one process they hold the
interpreter while the results files and the document wait. A :class:`ChartProcess` starts
a helper Python process ahead of time (a large job starts it while its model calls run),
which imports matplotlib and the chart list and draws a warm-up figure, at a lower
priority. At report time :func:`~robustify.reporting.run_report.write_report` sends it
the chart frames (the summary, overview and severity curve: a few rows each, never the
results) as soon as they are computed and writes ``results.csv``, ``results.jsonl`` and
the document meanwhile; the page waits for the images only when it embeds them.

Requests and replies are JSON lines: frames as exact columns (:func:`encode_frame`; one
that cannot travel exactly is drawn here), images as base64. Nothing is unpickled.

The bytes are the ones this process would draw: the same code, fonts and matplotlib
settings (a process whose matplotlib settings differ from the defaults draws here). The
helper is an optimisation and never a dependency: a chart the helper does not know (one
registered at run time), an error, a crash, a helper that cannot start or does not
answer within ``timeout`` seconds: the chart is drawn here, and the report is the same.

Usage::

    with ChartProcess() as helper:           # early: it imports while other work runs
        ...
        write_report(results, out, title=..., chart_process=helper)
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import base64
import json
import math
import subprocess
import sys
import threading
from concurrent.futures import Future, TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

__all__ = ["ChartProcess", "encode_frame", "decode_frame"]

log = logging.getLogger(__name__)

# run with ``-c`` so that the helper imports the same robustify as this process, also
# from a source checkout that is only on this process's sys.path
_BOOT = ("import sys; root = sys.argv[1]\n"
         "if root not in sys.path: sys.path.insert(0, root)\n"
         "from robustify.reporting.chart_process import main; sys.exit(main())")

_SETTINGS_IGNORED = frozenset({"backend", "backend_fallback", "interactive"})
"""matplotlib settings that do not change the files a figure saves."""


def _settings_customised() -> bool:
    """True when this process's matplotlib settings differ from its defaults (a style,
    a notebook's figure size): the helper would not draw with them."""
    mpl = sys.modules.get("matplotlib")
    if mpl is None:
        return False
    try:
        return any(value != mpl.rcParamsOrig.get(key) for key, value in mpl.rcParams.items()
                   if key not in _SETTINGS_IGNORED)
    except Exception:  # a value that cannot be compared: draw here to be safe
        return True


class _Images(Mapping[str, bytes]):
    """One chart's images by format; the first read waits for the helper's bytes, or
    draws them here when the helper has none."""

    def __init__(self, reply: Callable[[], dict[str, Any]], name: str,
                 draw_here: Callable[[], dict[str, bytes]]) -> None:
        self._reply, self._name, self._draw_here = reply, name, draw_here
        self._images: dict[str, bytes] | None = None

    def _get(self) -> dict[str, bytes]:
        if self._images is None:
            images = self._reply().get(self._name)
            self._images = images if images is not None else self._draw_here()
        return self._images

    def __getitem__(self, fmt: str) -> bytes:
        return self._get()[fmt]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


class ChartProcess:
    """A helper process that draws charts, started now, used by :meth:`draw`, ended by
    :meth:`close` (or the ``with`` block).

    Args:
        timeout: Seconds to wait for the helper's images before drawing here instead.
    """

    def __init__(self, *, timeout: float = 120.0) -> None:
        self.timeout = timeout
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        root = str(Path(__file__).resolve().parents[2])
        try:
            self._proc = subprocess.Popen([sys.executable, "-c", _BOOT, root],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL)
        except OSError as exc:
            log.debug("no chart process (%s): charts are drawn here", exc)

    def __enter__(self) -> "ChartProcess":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    @property
    def alive(self) -> bool:
        """True while the helper runs."""
        return self._proc is not None and self._proc.poll() is None

    def draw(self, names: Sequence[str], data: Any, *, formats: Sequence[str] = ("png",),
             dpi: int = 110) -> dict[str, Mapping[str, bytes]]:
        """Ask the helper for the charts ``names`` of ``data`` (a computed
        :class:`~robustify.reporting.charts.ChartData`); return at once.

        Returns:
            Per name, its images by format, as :func:`~robustify.reporting.charts.render`
            returns them; reading one waits for the helper (drawing here on failure).
        """
        from robustify.reporting import charts

        reply: Future[dict[str, Any]] = Future()
        frames = ({name: encode_frame(data.frame(name)) for name in data.FRAMES}
                  if self.alive and names and not _settings_customised() else {})
        if frames and all(frame is not None for frame in frames.values()):
            request = {"names": list(names), "formats": list(formats), "dpi": dpi,
                       "data_label": data.data_label, "frames": frames}
            threading.Thread(target=self._exchange, args=(request, reply), daemon=True,
                             name="robustify-charts").start()
        else:
            reply.set_result({})
        answer = functools.partial(self._answer, reply)
        return {name: _Images(answer, name, functools.partial(charts.render, name, data,
                                                              formats=formats, dpi=dpi))
                for name in names}

    def _exchange(self, request: dict[str, Any], reply: "Future[dict[str, Any]]") -> None:
        result: dict[str, Any] = {}
        try:
            with self._lock:
                proc = self._proc
                if proc is not None and proc.stdin is not None and proc.stdout is not None:
                    proc.stdin.write(json.dumps(request).encode("utf-8") + b"\n")
                    proc.stdin.flush()
                    answer = json.loads(proc.stdout.readline())
                    if isinstance(answer, dict):
                        result = {name: _images_from_json(images)
                                  for name, images in answer.items()}
        except Exception as exc:  # a dead or broken helper: the caller draws here
            log.debug("the chart process failed (%s): charts are drawn here", exc)
        finally:
            reply.set_result(result)

    def _answer(self, reply: "Future[dict[str, Any]]") -> dict[str, Any]:
        """The helper's images by chart, waiting at most ``timeout`` seconds ({}: none)."""
        try:
            return reply.result(timeout=self.timeout)
        except FutureTimeout:
            log.warning("the chart process gave no charts in %.0f s: drawing them here",
                        self.timeout)
            self._kill()  # the exchange thread then sees the pipe close and sets {}
            return reply.result()

    def _kill(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(OSError):
                self._proc.kill()

    def close(self) -> None:
        """End the helper: it exits when its input closes (0.1-0.2 s of interpreter
        shutdown, which nobody waits for); a thread reaps it, killing it after 5 s."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            if proc.stdin is not None:
                proc.stdin.close()
        if proc.stdout is not None:
            proc.stdout.close()
        threading.Thread(target=_reap, args=(proc,), daemon=True,
                         name="robustify-charts-reap").start()


def _reap(proc: "subprocess.Popen[bytes]") -> None:
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            proc.kill()
        proc.wait()


# ------------------------------------------------------------------- frames as JSON

_DTYPES = frozenset({"float64", "int64", "bool", "str", "object"})
"""Column dtypes sent as they are; a frame with any other is drawn here."""


def _text_or_missing(value: Any) -> bool:
    return value is None or isinstance(value, str) or (isinstance(value, float)
                                                       and math.isnan(value))


def encode_frame(frame: Any) -> dict[str, Any] | None:
    """A chart frame as JSON-ready columns, exactly (floats by their shortest exact
    repr); None when it cannot travel exactly (another dtype, values that are not text
    in a text column, attributes, an index other than 0..n-1, a name that is not text),
    and is then drawn here. The frame is decoded back here and compared, so what the
    helper draws from is the frame itself."""
    import pandas as pd

    index = frame.index
    if (frame.attrs or not isinstance(index, pd.RangeIndex) or index.start != 0
            or index.step != 1):
        return None
    columns = []
    for name in frame.columns:
        column = frame[name]
        dtype = str(column.dtype)
        if not isinstance(name, str) or dtype not in _DTYPES:
            return None
        values = column.tolist()
        if dtype in ("str", "object") and not all(map(_text_or_missing, values)):
            return None
        columns.append([name, dtype, values])
    encoded = {"rows": len(frame), "columns": columns}
    try:
        same = decode_frame(json.loads(json.dumps(encoded))).equals(frame)
    except (TypeError, ValueError):
        return None
    return encoded if same else None


def decode_frame(encoded: Mapping[str, Any]) -> Any:
    """The frame :func:`encode_frame` encoded."""
    import pandas as pd

    return pd.DataFrame({name: pd.Series(values, dtype=dtype)
                         for name, dtype, values in encoded["columns"]},
                        index=pd.RangeIndex(encoded["rows"]))


def _images_from_json(images: Any) -> dict[str, bytes] | None:
    if not isinstance(images, dict):
        return None
    return {fmt: base64.b64decode(text) for fmt, text in images.items()}


# ------------------------------------------------------------------- the helper's side


def _draw(request: Mapping[str, Any]) -> dict[str, Any]:
    """Images by chart name; None for a chart this process does not know or cannot draw."""
    from robustify.reporting import charts

    frames = {name: decode_frame(frame) for name, frame in request["frames"].items()}
    data = charts.ChartData(None, data_label=request["data_label"], **frames)
    known = set(charts.names())
    out: dict[str, Any] = {}
    for name in request["names"]:
        out[name] = None
        if name in known:
            try:
                images = charts.render(name, data, formats=request["formats"],
                                       dpi=request["dpi"])
                out[name] = {fmt: base64.b64encode(raw).decode("ascii")
                             for fmt, raw in images.items()}
            except Exception:  # the caller draws it and sees the error itself
                pass
    return out


def main() -> int:
    """The helper: read requests (a JSON line each) on stdin, answer each with a JSON
    line on stdout, until EOF."""
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints cannot corrupt replies
    if hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(10)  # importing while model calls run: yield the cores to them
    from robustify.reporting import charts

    def warm(fig: Any) -> None:
        fig.text(0.5, 0.5, "warm")  # fonts and both savefig paths load now

    charts.figure_bytes(warm, (1.0, 1.0), formats=("png", "svg"))
    for line in sys.stdin.buffer:
        channel.write(json.dumps(_draw(json.loads(line))).encode("utf-8") + b"\n")
        channel.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
