"""A fleet of endpoints: the runner against the concurrency limit, and one endpoint dying.

A loopback fleet (``tests/robustify/fleet_server.py``, its own process so its CPU is not
ours) serves ``E = 8`` endpoints that answer every request after a fixed latency ``L``.
The runner asks ``N`` distinct prompts of ``openai:fake@URL1,...,URL8`` with
``endpoint_concurrency = 64``: no more than ``E x 64`` requests can be in flight, so
``N`` calls cannot finish faster than ``N x L / (E x 64)`` seconds, the *limit*.
Efficiency = limit / wall time = mean requests in flight / (E x 64).

Two runs on fresh fleets:

* ``healthy``: every endpoint up. Mark: efficiency >= 0.85.
* ``one endpoint``: the same calls to endpoint 0 alone at concurrency 512 (same
  server, same latency): the fleet's own overhead is the ratio of the two walls, which
  holds on a busy machine where the absolute efficiency does not.
* ``one dies``: endpoint 3 closes its port (dropping its calls in flight) after
  answering a third of its share. Mark: no lost call (every row answered, none with an
  error); the calls it dropped went to the other endpoints. Its efficiency is printed
  for context (its limit assumes all 8 endpoints for the whole run).

Run: ``python -m benchmarks.fleet [--quick]``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

from benchmarks.common import ROOT, Figure, check, load_average, print_figures, stop_process, timed

__all__ = ["measure", "main", "ENDPOINTS", "PER_ENDPOINT", "LATENCY"]

ENDPOINTS = 8
PER_ENDPOINT = 64
LATENCY = 2.0
"""Seconds per answer: 512 in flight then need about 256 requests/s, half a core of
client CPU at ~2 ms per request (``docs/performance.md``); shorter latencies measure the
client's CPU, not the fleet."""
DYING = 3
"""Index of the endpoint that dies midway."""


class FleetProcess:
    """``python -m tests.robustify.fleet_server`` in its own process."""

    def __init__(self, endpoints: int, latency: float, die: str | None = None) -> None:
        self.args = ["--endpoints", str(endpoints), "--latency", str(latency)]
        if die:
            self.args += ["--die", die]
        self.proc: subprocess.Popen[str] | None = None
        self.urls: list[str] = []

    def __enter__(self) -> "FleetProcess":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.robustify.fleet_server", *self.args], cwd=str(ROOT),
            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("http"):
            self.__exit__()
            raise RuntimeError("the fleet server did not start")
        self.urls = line.split(",")
        return self

    def __exit__(self, *exc: object) -> None:
        stop_process(self.proc)
        self.proc = None


def _run(urls: list[str], variants: list[Any], workdir: Path, *, single: bool = False
         ) -> dict[str, Any]:
    """One runner pass over ``variants``; the frame's errors and the fleet's counts.

    ``single``: ask ``urls[0]`` alone at the fleet's total concurrency instead.
    """
    from robustify.models import parse_model_spec
    from robustify.prompts import build_messages
    from robustify.runner.cache import ResponseCache
    from robustify.runner.execute import run_queries
    from robustify.scoring import score_answer

    if single:
        backend = parse_model_spec(f"openai:fake@{urls[0]}",
                                   concurrency=PER_ENDPOINT * len(urls))
    else:
        backend = parse_model_spec(f"openai:fake@{','.join(urls)}",
                                   endpoint_concurrency=PER_ENDPOINT)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp, \
            ResponseCache(Path(tmp) / "fresh.sqlite") as cache:
        wall, cpu, frame = timed(lambda: run_queries(
            variants, [backend], build_messages=build_messages, score=score_answer,
            cache=cache, progress=False))
    stats = frame.attrs["run_stats"][backend.label]
    errors = frame["error"].dropna().tolist()
    return {"wall": wall, "cpu": cpu, "calls": stats["calls"], "rows": len(frame),
            "answered": int(frame["response"].notna().sum()), "errors": len(errors),
            "error_sample": errors[:3],
            "endpoints": [] if single else backend.endpoint_facts(),
            "retries": backend.retry.retries}


def measure(quick: bool = False) -> tuple[dict[str, Any], list[Figure]]:
    """Both runs; raw numbers and figures."""
    from benchmarks.remote import _prompts

    rounds = 3 if quick else 8
    n = ENDPOINTS * PER_ENDPOINT * rounds
    limit_s = n * LATENCY / (ENDPOINTS * PER_ENDPOINT)
    variants, _ = _prompts(n)
    raw: dict[str, Any] = {"n": n, "latency": LATENCY, "endpoints": ENDPOINTS,
                           "per_endpoint": PER_ENDPOINT, "limit_s": limit_s}
    die_after = n // ENDPOINTS // 3
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with FleetProcess(ENDPOINTS, LATENCY) as fleet:
            raw["healthy"] = healthy = _run(fleet.urls, variants, workdir)
            raw["single"] = single = _run(fleet.urls, variants, workdir, single=True)
        raw["load_healthy"] = load_average()[0]
        with FleetProcess(ENDPOINTS, LATENCY, die=f"{DYING}:{die_after}") as fleet:
            raw["one_dies"] = dies = _run(fleet.urls, variants, workdir)
        raw["load_dies"] = load_average()[0]
    figures: list[Figure] = []
    eff = limit_s / healthy["wall"]
    note = (f"N={n}, E={ENDPOINTS} x {PER_ENDPOINT}, L={LATENCY}s, limit {limit_s:.1f}s, wall "
            f"{healthy['wall']:.2f}s, client CPU {healthy['cpu'] / n * 1e3:.2f} ms/call "
            f"({healthy['cpu'] / limit_s:.2f} of a core at the limit); "
            f"load {raw['load_healthy']:.1f}")
    figures.append(Figure("fleet", "efficiency, 8 endpoints x 64 (limit/wall)", eff, "",
                          ">= 0.85", check(eff, ">= 0.85"), note, healthy))
    ratio = single["wall"] / healthy["wall"]
    figures.append(Figure("fleet", "fleet / one endpoint at C=512 throughput", ratio, "x",
                          note=f"one endpoint: wall {single['wall']:.2f}s, client CPU "
                               f"{single['cpu'] / n * 1e3:.2f} ms/call (same calls, same server)",
                          extra=single))
    lost = dies["rows"] - dies["answered"]
    dead = dies["endpoints"][DYING]
    figures.append(Figure("fleet", "calls lost when one endpoint dies midway", float(lost),
                          "", "== 0", check(float(lost), "== 0") and dies["errors"] == 0,
                          f"endpoint {DYING} died after {dead['calls']} answers "
                          f"({dead['failures']} attempts failed there and went elsewhere); "
                          f"{dies['errors']} error rows", dies))
    eff_dies = limit_s / dies["wall"]
    figures.append(Figure("fleet", "efficiency when one endpoint dies midway", eff_dies, "",
                          note=f"wall {dies['wall']:.2f}s; calls per endpoint "
                               f"{[e['calls'] for e in dies['endpoints']]}; "
                               f"load {raw['load_dies']:.1f}"))
    return raw, figures


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``--quick`` for three rounds of 512 calls instead of eight."""
    import argparse

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    raw, figures = measure(args.quick)
    print_figures(figures)
    for fig in figures:
        if fig.ok is False:
            print(f"MISSED: {fig.name}: {fig.note}")


if __name__ == "__main__":
    main()
