"""A million items on one machine: perturb, write and plan N items x 12 variants, streamed.

What a run does before its first model call, at scale: the items are in memory (the
data set), every variant is drawn, written to a variants file (as ``perturb`` and a
run's ``variants.jsonl``) and planned (prompt built, keyed for the cache, deduplicated)
as it streams by; nothing holds the list of all variants. Each size runs in a fresh
child process that reports its peak RSS (``ru_maxrss``; with ``--workers 2`` the
perturbing processes are reported apart).

The variants are, as in :mod:`benchmarks.scale`, a pool of real variants replayed under
new ids (fast); ``--real`` draws every variant with the real transforms (the memory
profile is the same; the time then includes the transforms, about 8,000 variants/s a
core).

Run: ``python -m benchmarks.scale_plan [n_items ...] [--real] [--workers N]``;
``python -m benchmarks.scale_plan 1000000`` is the issue's mark (1 GiB).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any, Iterator, Sequence

from benchmarks.common import ROOT, Figure, check, load_average
from benchmarks.scale import _rss_mib

__all__ = ["child", "measure", "main"]

MARK = "< 1024"
"""Peak RSS mark in MiB for perturb + write + plan."""




def _replayed_items(n_items: int) -> tuple[list[Any], list[Any], int]:
    """The data set of the replay: ``n_items`` items (pool item ``k % pool`` under a new
    id, with a copy marker in its text), the pool's real variants, and variants per item."""
    import dataclasses

    from benchmarks.scale import perturbed_pool

    base, base_variants = perturbed_pool(n_items)
    items = [item if k < len(base) else dataclasses.replace(
                 item, id=f"{item.id}~{k // len(base)}", input=f"[{k // len(base)}] {item.input}")
             for k in range(n_items) for item in (base[k % len(base)],)]
    return items, base_variants, len(base_variants) // len(base)


def _stream(items: list[Any], real: bool, workers: int, pool: Any = None) -> Iterator[Any]:
    """Clean originals first, then every variant (the order of ``PreparedJob.variants``)."""
    import dataclasses

    from perturbations import Variant, perturb_items

    from benchmarks.scale import SEVERITIES, TRANSFORMS

    for item in items:
        yield Variant.clean(item)
    if real:
        yield from perturb_items(items, TRANSFORMS, severities=SEVERITIES, seed=0,
                                 workers=workers)
        return
    base_variants, per_item = pool
    size = len(base_variants) // per_item
    for k, item in enumerate(items):
        j = k % size
        for variant in base_variants[j * per_item:(j + 1) * per_item]:
            own = variant.item
            if k >= size:  # the pool variant's text under this copy's id and marker
                own = dataclasses.replace(own, id=item.id,
                                          input=f"[{k // size}] {own.input}")
            yield dataclasses.replace(variant, item=own)


def child(n_items: int, real: bool, workers: int, write: bool = True) -> dict[str, Any]:
    """Perturb, write and plan ``n_items`` items in this process; return the figures."""
    from benchmarks.perturb_throughput import build_items
    from robustify.atomic import tee_jsonl_atomic
    from robustify.models import parse_model_spec
    from robustify.prompts import build_messages
    from robustify.runner.plan import plan_rows

    backend = parse_model_spec("python:benchmarks.scale:answer")
    started = time.perf_counter()
    pool = None
    if real:
        items = build_items(n_items)  # the data set, held as a run holds it
    else:
        items, base_variants, per_item = _replayed_items(n_items)
        pool = (base_variants, per_item)
    gc.collect()
    items_mib = _rss_mib()
    with tempfile.TemporaryDirectory(prefix="robustify-scale-plan-") as folder:
        path = os.path.join(folder, "variants.jsonl")
        start = time.perf_counter()
        stream = _stream(items, real, workers, pool)
        if write:
            stream = tee_jsonl_atomic(path, stream, lambda v: v.to_json())
        plans, groups, rows, reused = plan_rows(stream, [backend], build_messages)
        seconds = time.perf_counter() - start
        file_mib = os.path.getsize(path) / 2 ** 20 if write else 0.0
        spilled = plans[0].keys.spilled
    return {"items": n_items, "rows": rows, "unique_prompts": len(groups), "reused": reused,
            "seconds": seconds, "rows_per_s": rows / seconds, "real": real,
            "workers": workers, "items_mib": items_mib, "written": write,
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "workers_peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            "variants_file_mib": file_mib, "keys_spilled": spilled,
            "total_seconds": time.perf_counter() - started}


def _spawn(n_items: int, real: bool, workers: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.scale_plan", "--child", str(n_items),
           "--workers", str(workers)] + (["--real"] if real else [])
    out = subprocess.run(cmd, cwd=str(ROOT), capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"scale_plan child for {n_items} items failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(sizes: Sequence[int] = (50_000, 200_000), real: bool = False, workers: int = 1
            ) -> tuple[list[dict[str, Any]], list[Figure]]:
    """Run every size in its own process; return the raw runs and the table figures."""
    runs = []
    for n in sizes:
        run = _spawn(n, real, workers)
        run["load"] = load_average()[0]
        runs.append(run)
    figures = []
    for run in runs:
        how = "real transforms" if run["real"] else "replayed variants"
        figures.append(Figure(
            "plan", f"perturb+write+plan peak RSS, {run['items']:,} items", run["peak_mib"],
            "MiB", MARK, check(run["peak_mib"], MARK),
            note=f"{run['rows']:,} rows, {run['unique_prompts']:,} prompts, "
                 f"{run['seconds']:.0f} s ({run['rows_per_s']:,.0f} rows/s, {how}, load "
                 f"{run['load']:.1f}); {run['items_mib']:.0f} MiB before the first variant "
                 f"(items, interpreter); variants file "
                 f"{run['variants_file_mib']:,.0f} MiB", extra=run))
    if len(runs) >= 2:
        a, b = runs[0], runs[-1]
        plan_a = a["peak_mib"] - a["items_mib"]
        plan_b = b["peak_mib"] - b["items_mib"]
        growth = (plan_b - plan_a) * 2 ** 20 / (b["rows"] - a["rows"])
        figures.append(Figure("plan", "planning memory per extra row", growth, "B/row",
                              note="peak minus the items, between the smallest and largest "
                                   "size", extra={"growth_bytes_per_row": growth}))
    return runs, figures


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: sizes, ``--real``, ``--workers``; ``--child N`` is internal."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[50_000, 200_000])
    parser.add_argument("--real", action="store_true", help="perturb every item for real")
    parser.add_argument("--workers", type=int, default=1, help="perturbing processes (--real)")
    parser.add_argument("--no-write", action="store_true",
                        help="(--child) plan without writing the variants file")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child, args.real, args.workers, not args.no_write)))
        return
    _, figures = measure(args.sizes, args.real, args.workers)
    for fig in figures:
        print(f"{fig.name:48s} {fig.value:12,.1f} {fig.unit:6s} {fig.target:8s} {fig.note}")


if __name__ == "__main__":
    main()
