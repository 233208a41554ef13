"""Scale: a 1.3-million-row job through the runner, its speed and its peak memory.

A job of N items x 4 transforms (typos, slang, truncation, ambiguity) x 3 severities,
plus the clean originals (13 rows per item), runs through ``run_queries`` with a
Python-callable model that answers at once, so what is measured is robustify itself:
planning (prompt building, hashing, dedupe), the call path, scoring and the frame.

Each size runs in a fresh child process, which reports its peak RSS (``ru_maxrss``),
so the sizes do not contaminate each other. The variants are *streamed* into the
runner from a generator, as ``robustify.pipeline.run`` should do (see ``docs/performance.md``).

Where the variants come from: perturbing 1.2 million variants with the real transforms
takes minutes on this machine (their speed is measured in ``perturb_throughput``), so
by default the child perturbs a pool of real items once and replays it: item ``k`` is
pool item ``k % pool`` with its own id and a copy marker in its text, so every prompt
stays distinct and the pool's real mix of changed, unchanged and duplicate variants is
kept. ``--real`` perturbs every item instead (slow; the result is the same memory
profile, and the items/s then include the transforms).

Run: ``python -m benchmarks.scale [n_items ...] [--real]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import resource
import subprocess
import sys
import time
from typing import Any, Iterator, Sequence

from benchmarks.common import ROOT, Figure, check, load_average

__all__ = ["replayed_variants", "child", "measure", "main", "TRANSFORMS"]

TRANSFORMS = ("typos", "slang", "truncation", "ambiguity")
SEVERITIES = ("low", "medium", "high")
POOL = 2000
"""Items perturbed for real and replayed (26,000 variants with their originals)."""


async def answer(messages: list[dict[str, str]]) -> str:
    """The trivial model: ``python:benchmarks.scale:answer``.

    Async, so the run measures robustify rather than a thread-pool hop: a sync
    function is run in the backend's thread pool, which adds about 50 us per call here.
    """
    return "42"


def _peak_mib() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")  # pragma: no cover


def perturbed_pool(n_items: int, pool: int = POOL) -> tuple[list[Any], list[Any]]:
    """The pool's items and their real variants (item order, then spec)."""
    from perturbations import perturb_items
    from benchmarks.perturb_throughput import build_items

    base = build_items(min(pool, n_items))
    return base, list(perturb_items(base, TRANSFORMS, severities=SEVERITIES, seed=0))


def replayed_variants(n_items: int, pool: tuple[list[Any], list[Any]] | None = None
                      ) -> Iterator[Any]:
    """Clean originals of ``n_items`` items, then all their variants, as a stream.

    The order is the one ``PreparedJob.variants`` yields (originals first). See the
    module docstring for how the pool (:func:`perturbed_pool`) is replayed.
    """
    from perturbations import Variant

    base, base_variants = pool if pool is not None else perturbed_pool(n_items)
    per_item = len(base_variants) // len(base)
    copies = -(-n_items // len(base))

    def copy_item(item: Any, copy: int) -> Any:
        if copy == 0:
            return item
        return dataclasses.replace(item, id=f"{item.id}~{copy}", input=f"[{copy}] {item.input}")

    count = 0
    for copy in range(copies):
        for item in base:
            if count == n_items:
                break
            count += 1
            yield Variant.clean(copy_item(item, copy))
    count = 0
    for copy in range(copies):
        for j in range(len(base)):
            if count == n_items:
                return
            count += 1
            for variant in base_variants[j * per_item:(j + 1) * per_item]:
                yield dataclasses.replace(variant, item=copy_item(variant.item, copy))


def real_variants(n_items: int) -> Iterator[Any]:
    """Clean originals, then every variant drawn by the real transforms."""
    from perturbations import Variant, perturb_items
    from benchmarks.perturb_throughput import build_items

    items = build_items(n_items)
    for item in items:
        yield Variant.clean(item)
    yield from perturb_items(items, TRANSFORMS, severities=SEVERITIES, seed=0)


def child(n_items: int, real: bool) -> dict[str, Any]:
    """Run one job in this process and return its figures (called in a fresh child)."""
    from robustify.models import parse_model_spec
    from robustify.prompts import build_messages
    from robustify.runner.execute import run_queries
    from robustify.scoring import score_answer

    backend = parse_model_spec("python:benchmarks.scale:answer", concurrency=8)
    if real:
        source = real_variants(n_items)
    else:
        # The pool (and the transforms' lexicons it loads) is built before the baseline
        # is taken: it is a fixed cost of this benchmark, not of the run.
        source = replayed_variants(n_items, perturbed_pool(n_items))
    gc.collect()
    baseline = _rss_mib()
    start = time.perf_counter()
    frame = run_queries(source, [backend], build_messages=build_messages, score=score_answer,
                        cache=None, progress=False)
    seconds = time.perf_counter() - start
    stats = frame.attrs["run_stats"][backend.label]
    frame_mib = float(frame.memory_usage(deep=True).sum()) / 2 ** 20
    return {"items": n_items, "rows": len(frame), "seconds": seconds,
            "items_per_s": n_items / seconds, "rows_per_s": len(frame) / seconds,
            "calls": stats["calls"], "unique_prompts": stats["unique_prompts"],
            "errors": stats["errors"], "peak_mib": _peak_mib(), "baseline_mib": baseline,
            "end_rss_mib": _rss_mib(), "frame_mib": frame_mib,
            "frame_bytes_per_row": frame_mib * 2 ** 20 / max(1, len(frame)), "real": real}


def _spawn(n_items: int, real: bool) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "benchmarks.scale", "--child", str(n_items)]
                         + (["--real"] if real else []), cwd=str(ROOT),
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"scale child for {n_items} items failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(sizes: Sequence[int] = (25_000, 50_000, 100_000), real: bool = False
            ) -> tuple[list[dict[str, Any]], list[Figure]]:
    """Run every size in its own process; return the raw runs and the table figures."""
    runs = []
    for n in sizes:
        run = _spawn(n, real)
        run["load"] = load_average()[0]
        runs.append(run)
    figures: list[Figure] = []
    big = runs[-1]
    figures.append(Figure("scale", f"items/s, {big['items']:,} items ({big['rows']:,} rows)",
                          big["items_per_s"], "items/s",
                          note=f"{big['rows_per_s']:,.0f} rows/s, {big['calls']:,} calls, "
                               f"{big['seconds']:.0f} s" + (", real transforms" if real else
                                                             ", replayed variants"),
                          extra=big))
    for run in runs:
        figures.append(Figure("scale", f"peak RSS, {run['items']:,} items", run["peak_mib"],
                              "MiB", "< 1024", check(run["peak_mib"], "< 1024"),
                              note=f"{run['rows']:,} rows; frame {run['frame_mib']:.0f} MiB "
                                   f"({run['frame_bytes_per_row']:.0f} B/row); "
                                   f"{run['baseline_mib']:.0f} MiB before the run",
                              extra=run))
    if len(runs) >= 2:
        a, b = runs[0], runs[-1]
        growth = (b["peak_mib"] - a["peak_mib"]) * 2 ** 20 / (b["rows"] - a["rows"])
        frame_row = b["frame_bytes_per_row"]
        figures.append(Figure("scale", "peak RSS growth per extra row", growth, "B/row",
                              note=f"frame itself {frame_row:.0f} B/row: growth / frame = "
                                   f"{growth / frame_row:.2f}",
                              extra={"growth_bytes_per_row": growth,
                                     "frame_bytes_per_row": frame_row}))
    return runs, figures


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: sizes to run, ``--real`` transforms; ``--child N`` is internal."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[25_000, 50_000, 100_000])
    parser.add_argument("--real", action="store_true", help="perturb every item for real")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child, args.real)))
        return
    runs, figures = measure(args.sizes, args.real)
    for fig in figures:
        print(f"{fig.name:45s} {fig.value:12,.1f} {fig.unit:8s} {fig.target:8s} {fig.note}")


if __name__ == "__main__":
    main()
