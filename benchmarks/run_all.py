"""The whole performance suite: one command, one table of figures and ratios.

    python -m benchmarks            # everything, under 10 minutes on the 2-core box
    python -m benchmarks --quick    # a one-minute smoke run (small sizes, one round)
    python benchmarks/run_all.py --only remote,cache --json out.json --markdown out.md

Sections (each also runs alone, e.g. ``python -m benchmarks.remote``):

* ``calls``/``cache`` (:mod:`benchmarks.cache_and_calls`): calls vs distinct prompts vs
  rows on the default job, and a re-run answered wholly by the cache.
* ``remote`` (:mod:`benchmarks.remote`): runner vs the concurrency limit and vs
  hand-written AsyncOpenAI loops at C=64 and C=256, client CPU per request, profile.
* ``fleet`` (:mod:`benchmarks.fleet`): 8 loopback endpoints x 64 in flight vs the
  concurrency limit, vs one endpoint at 512, and no lost call when one dies midway.
* ``job`` (:mod:`benchmarks.whole_job`): ``python -m robustify run`` end to end (load,
  perturb, calls, scoring, report) on a 77-label set vs the concurrency limit and vs a
  hand-written AsyncOpenAI loop over the same calls, at C=64 and C=256.
* ``local`` (:mod:`benchmarks.local_model`): batched SmolLM2 vs the bare one-prompt loop, tokens
  evaluated vs unique-prefix tokens, llama.cpp's own rates and the job's floor.
* ``scale`` (:mod:`benchmarks.scale`): 25k/50k/100k items x 12 variants through a
  Python-callable model: items/s and peak RSS.
* ``perturb`` (:mod:`benchmarks.perturb_throughput`): transform throughput vs nlpaug.
* ``plan`` (:mod:`benchmarks.scale_plan`): items x 12 variants perturbed, written and
  planned, streamed: peak RSS (``python -m benchmarks.scale_plan 1000000`` for a million).
* ``cachescale`` (:mod:`benchmarks.cache_scale`): the response cache at 200,000 rows (size,
  lookups, writes; ``python -m benchmarks.cache_scale --rows 10000000`` for 10 million).

These are measurements, not tests: the exit code is 0 whether or not a mark is met
(``--strict`` makes a missed mark exit 1). The figures with a mark are ratios taken
side by side in one run, so they hold on a busy machine; absolute times are printed
for context together with the load average.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

if __package__ in (None, ""):  # `python benchmarks/run_all.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import Figure, load_average, machine  # noqa: E402

__all__ = ["SECTIONS", "run", "main"]


def _calls(quick: bool, args: argparse.Namespace) -> tuple[Any, list[Figure]]:
    from benchmarks import cache_and_calls

    return cache_and_calls.measure(quick)


def _remote(quick: bool, args: argparse.Namespace) -> tuple[Any, list[Figure]]:
    from benchmarks import remote

    return remote.measure(quick, profile=not args.no_profile)


def _fleet(quick: bool, args: argparse.Namespace) -> tuple[Any, list[Figure]]:
    from benchmarks import fleet

    return fleet.measure(quick)


def _job(quick: bool, args: argparse.Namespace) -> tuple[Any, list[Figure]]:
    from benchmarks import whole_job

    return whole_job.measure(quick)


def _local(quick: bool, args: argparse.Namespace) -> tuple[Any, list[Figure]]:
    from benchmarks import local_model

    return local_model.measure(quick)


def _scale(quick: bool, args: argparse.Namespace) -> tuple[Any, list[Figure]]:
    from benchmarks import scale

    sizes = (4_000, 8_000) if quick else (25_000, 50_000, 100_000)
    return scale.measure(sizes, real=args.real_scale)


def _perturb(quick: bool, args: argparse.Namespace) -> tuple[Any, list[Figure]]:
    from benchmarks import perturb_throughput

    return perturb_throughput.figures(300 if quick else 4000)


def _plan(quick: bool, args: argparse.Namespace) -> tuple[Any, list[Figure]]:
    from benchmarks import scale_plan

    return scale_plan.measure((5_000, 20_000) if quick else (50_000, 200_000))


def _cache_scale(quick: bool, args: argparse.Namespace) -> tuple[Any, list[Figure]]:
    from benchmarks import cache_scale

    return cache_scale.measure(50_000 if quick else 200_000)


SECTIONS: dict[str, Callable[[bool, argparse.Namespace], tuple[Any, list[Figure]]]] = {
    "calls": _calls,
    "remote": _remote,
    "fleet": _fleet,
    "job": _job,
    "local": _local,
    "scale": _scale,
    "perturb": _perturb,
    "plan": _plan,
    "cachescale": _cache_scale,
}
"""Section name -> runner, in the order the suite runs them."""


def _value(fig: Figure) -> str:
    if fig.value is None:
        return "-"
    v = fig.value
    if fig.unit in ("items/s", "var/s", "rows/s", "MiB", "B/row", "keys/s"):
        return f"{v:,.0f}"
    return f"{v:.3f}" if abs(v) < 10 else f"{v:,.1f}"


def _status(fig: Figure) -> str:
    return {True: "ok", False: "MISSED", None: ""}[fig.ok]


def table(figures: Sequence[Figure]) -> str:
    """The plain-text table printed at the end."""
    lines = [f"{'section':8s} {'figure':48s} {'value':>12s} {'unit':7s} {'mark':9s} {'':6s} note",
             "-" * 140]
    for fig in figures:
        lines.append(f"{fig.section:8s} {fig.name[:48]:48s} {_value(fig):>12s} {fig.unit:7s} "
                     f"{fig.target:9s} {_status(fig):6s} {fig.note}")
    return "\n".join(lines)


def markdown(figures: Sequence[Figure]) -> str:
    """The same table in Markdown (for ``docs/performance.md``)."""
    out = ["| section | figure | value | mark | | note |", "|---|---|---:|---|---|---|"]
    for fig in figures:
        value = _value(fig) + (f" {fig.unit}" if fig.unit and fig.value is not None else "")
        out.append(f"| {fig.section} | {fig.name} | {value} | {fig.target} | {_status(fig)} | "
                   f"{fig.note.replace('|', '/')} |")
    return "\n".join(out)


def run(names: Sequence[str], quick: bool, args: argparse.Namespace
        ) -> tuple[dict[str, Any], list[Figure]]:
    """Run the named sections; a failing section is reported and the others go on."""
    raw: dict[str, Any] = {}
    figures: list[Figure] = []
    for name in names:
        started = time.perf_counter()
        print(f"[{datetime.datetime.now():%H:%M:%S}] {name} ... (load {load_average()[0]:.2f})",
              file=sys.stderr, flush=True)
        try:
            raw[name], figs = SECTIONS[name](quick, args)
        except Exception as exc:  # one broken section must not hide the others
            traceback.print_exc()
            raw[name] = {"error": f"{type(exc).__name__}: {exc}"}
            figs = [Figure(name, "section failed", None, note=f"{type(exc).__name__}: {exc}")]
        seconds = time.perf_counter() - started
        raw[name] = {"seconds": seconds, "result": raw[name]}
        print(f"    {name} took {seconds:.0f} s", file=sys.stderr, flush=True)
        figures.extend(figs)
    return raw, figures


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="one-minute smoke run")
    parser.add_argument("--only", help=f"comma-separated sections ({', '.join(SECTIONS)})")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    parser.add_argument("--real-scale", action="store_true",
                        help="scale: perturb every item for real (slow) instead of replaying")
    parser.add_argument("--json", type=Path, help="also write every raw number here")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a mark is missed")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",")] if args.only else list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    started = time.perf_counter()
    header = (f"robustify benchmarks, {datetime.date.today()}, {machine()}"
              f"{' (quick)' if args.quick else ''}")
    print(header, flush=True)
    raw, figures = run(names, args.quick, args)
    total = time.perf_counter() - started
    print()
    print(table(figures))
    print(f"\nsuite took {total:.0f} s; load average at the end "
          f"{'/'.join(f'{x:.2f}' for x in load_average())}")
    if args.json:
        args.json.write_text(json.dumps(
            {"header": header, "seconds": total, "sections": raw,
             "figures": [vars(f) for f in figures]}, indent=2, default=str))
    if args.markdown:
        args.markdown.write_text(header + "\n\n" + markdown(figures) + "\n")
    missed = [f for f in figures if f.ok is False]
    return 1 if (args.strict and missed) else 0


if __name__ == "__main__":
    raise SystemExit(main())
