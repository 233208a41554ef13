"""Shared pieces of the benchmark suite: machine facts, timing, the fake server process.

Every benchmark here measures *ratios taken side by side in one run*: the machine has
two cores shared with other work, so absolute times drift from minute to minute while
contenders timed in alternating blocks see the same load.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/run_all.py` puts benchmarks/ first
    sys.path.insert(0, str(ROOT))

__all__ = ["ROOT", "Figure", "FakeServerProcess", "stop_process", "alternate", "check", "cpu_seconds",
           "load_average", "machine", "print_figures", "section_main", "timed"]


@dataclass
class Figure:
    """One line of the suite's table: a measured value, and its mark when it has one."""

    section: str
    """Benchmark section (``remote``, ``local``, ``cache`` ...)."""
    name: str
    """What was measured."""
    value: float | None
    """The figure (``None`` when it could not be measured)."""
    unit: str = ""
    """Unit shown after the value (``x``, ``s``, ``ms``, ``MiB`` ...)."""
    target: str = ""
    """The mark, e.g. ``>= 0.85``; empty for figures reported without one."""
    ok: bool | None = None
    """Whether the mark was met (``None``: no mark)."""
    note: str = ""
    """Context: sizes, load, what the contenders were."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Raw numbers behind the figure (written to the JSON output)."""


def print_figures(figures: Sequence[Figure]) -> None:
    """One line per figure, for a section run on its own."""
    for fig in figures:
        value = "-" if fig.value is None else f"{fig.value:.3f}"
        print(f"{fig.name:48s} {value:>8s} {fig.unit:3s} {fig.target:8s} {fig.note}")


def section_main(doc: str | None, measure: Callable[[bool], tuple[Any, Sequence[Figure]]],
                 argv: Sequence[str] | None = None) -> None:
    """Command line of a section whose only option is ``--quick``."""
    import argparse

    parser = argparse.ArgumentParser(description=(doc or "").split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    _, figures = measure(args.quick)
    print_figures(figures)


def check(value: float | None, target: str) -> bool | None:
    """Evaluate ``target`` (``>= 0.85``, ``< 0.1``, ``== 0`` ...) against ``value``."""
    if value is None or not target:
        return None
    op, _, number = target.partition(" ")
    limit = float(number)
    return {">=": value >= limit, ">": value > limit, "<=": value <= limit,
            "<": value < limit, "==": value == limit}[op]


def cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_average() -> tuple[float, float, float]:
    """1, 5 and 15-minute load averages (other engineers share the machine)."""
    try:
        return os.getloadavg()
    except OSError:  # pragma: no cover - not on Linux
        return (float("nan"),) * 3


def machine() -> str:
    """One line describing where the suite ran."""
    return (f"{platform.python_implementation()} {platform.python_version()}, "
            f"{os.cpu_count()} cores, {platform.machine()}, "
            f"load {'/'.join(f'{x:.2f}' for x in load_average())}")


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Run ``fn``; return (wall seconds, CPU seconds of this process, result)."""
    cpu = cpu_seconds()
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, cpu_seconds() - cpu, result


def alternate(contenders: Sequence[str], rounds: int) -> Iterator[str]:
    """Contender names in rotating order, ``rounds`` times (ABBA-like fairness)."""
    for r in range(rounds):
        order = list(contenders)
        shift = r % len(order)
        yield from order[shift:] + order[:shift]


def stop_process(proc: "subprocess.Popen[str] | None") -> None:
    """Terminate ``proc`` if it still runs (kill it after 10 s) and reap it."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class FakeServerProcess:
    """The loopback OpenAI-compatible server in its own process, so its CPU is not ours.

    Args:
        latency: Seconds before each answer.
        module: The server module to run (``python -m MODULE --latency L``); it prints
            its base URL as its first line.
    """

    def __init__(self, latency: float, module: str = "tests.robustify.fake_openai_server"
                 ) -> None:
        self.latency = latency
        self.module = module
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    def __enter__(self) -> "FakeServerProcess":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, "--latency", str(self.latency)], cwd=str(ROOT), stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip()
        if not self.base_url.startswith("http"):
            self.close()
            raise RuntimeError("the fake server did not start")
        return self

    def stats(self) -> dict[str, Any]:
        """The server's counters (``completions``, ``max_in_flight`` ...)."""
        url = self.base_url.removesuffix("/v1") + "/_fake/stats"
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())

    def close(self) -> None:
        """Stop the server process (only the one this object started)."""
        stop_process(self.proc)
        self.proc = None

    def __exit__(self, *exc: object) -> None:
        self.close()
