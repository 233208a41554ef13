"""``leakage``: probe for benchmark leakage (verbatim vs rewritten, and completion)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from perturbations.errors import ConfigError

from robustify.atomic import check_writable, slug

__all__ = ["add_parser", "handle"]

DEFAULT_REWRITES_HELP = "choice_shuffle@1,clause_reorder@1,contractions@1,synonyms@0.5"
"""What ``--rewrites`` defaults to (robustify.probes.leakage.DEFAULT_REWRITES; a test keeps them equal)."""


def _float_pair(text: str) -> tuple[float, float]:
    parts = [p for p in re.split(r"[-,:]", text) if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW-HIGH shares such as 0.4-0.6, got {text!r}"
                                         ) from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2:
        raise argparse.ArgumentTypeError(f"expected LOW-HIGH shares such as 0.4-0.6, got {text!r}")
    return (values[0], values[1])


def add_parser(subparsers: Any) -> None:
    """Add the ``leakage`` verb to the CLI's subparsers (``handler=`` is set)."""
    p = subparsers.add_parser(
        "leakage", help="probe for benchmark leakage: verbatim vs rewritten, and completion",
        description="Signals, not proof: items right verbatim but wrong on every faithful "
                    "rewrite, and how much of an item's text the model can continue.",
        epilog="example: python -m robustify leakage --data sample --model local:smollm2 "
               "--limit 40 --out reports/leakage")
    p.add_argument("--data", default="sample", help="benchmark file or 'sample' (default)")
    p.add_argument("--format", help="format or preset (detected when omitted)")
    p.add_argument("--map", help="field mapping, e.g. input=question,target=answer")
    p.add_argument("--limit", type=int, help="seeded sample of N items")
    p.add_argument("--model", action="append",
                   help="model spec, repeatable (default local:smollm2)")
    p.add_argument("--probes", default="verbatim,completion",
                   help="comma-separated: verbatim, completion (default both)")
    p.add_argument("--rewrites", help="comma-separated rewrite specs for the verbatim probe "
                                      f"(default {DEFAULT_REWRITES_HELP})")
    p.add_argument("--replicates", type=int, default=2, help="draws per random rewrite (default 2)")
    p.add_argument("--rewriter", help="also ask this model for paraphrase rewrites (checked)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--cut", type=_float_pair, default=(0.4, 0.6),
                   help="share of words shown in the completion probe, LOW-HIGH (default 0.4-0.6)")
    p.add_argument("--ngram", type=int, default=3, help="n of the n-gram overlap (default 3)")
    p.add_argument("--no-controls", action="store_true",
                   help="leave out the fresh and famous-text controls (the shuffled one stays)")
    p.add_argument("--cache", help="response cache file, or 'off' (default: the run cache)")
    p.add_argument("--out", help="folder to write leakage.html/.md into (a run folder is fine; "
                                 "default reports/leakage__<data>__<model>)")
    p.add_argument("--top", type=int, default=10, help="suspect items listed per model")
    p.add_argument("--estimate", action="store_true",
                   help="print the calls each probe needs and, from a few timed calls per "
                        "model (answers cached), how long it takes; then stop")
    p.add_argument("--quiet", action="store_true",
                   help="no progress (bar, or lines in a log), no summary")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from robustify.data import load_items
    from robustify.probes.leakage import DEFAULT_REWRITES, probe_leakage
    from robustify.reporting.format import pct, pvalue

    models = args.model or ["local:smollm2"]
    probes = [p.strip() for p in args.probes.split(",") if p.strip()]
    rewrites = ([r.strip() for r in args.rewrites.split(",") if r.strip()] if args.rewrites
                else list(DEFAULT_REWRITES))
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {args.limit}")
    if args.replicates < 1 or args.ngram < 1 or args.top < 0:
        raise ConfigError("--replicates and --ngram must be at least 1, --top at least 0")
    items = load_items(args.data, format=args.format, mapping=args.map, limit=args.limit,
                       seed=args.seed)
    label = Path(args.data).stem
    out = Path(args.out) if args.out else Path("reports") / (
        f"leakage__{slug(label)}__{slug('+'.join(models))}")
    check_writable(out)
    cache: Any = "default" if args.cache is None else args.cache
    if args.estimate:
        return _estimate(args, items, models, probes, rewrites, cache)
    progress = not args.quiet  # a bar on a terminal, plain lines in a log
    say = None if args.quiet else (lambda line: print(f"leakage: {line}", file=sys.stderr,
                                                      flush=True))
    if say is not None:
        say(f"{len(items)} items, {len(models)} model(s), probes {', '.join(probes)}")
    result = probe_leakage(items, models, probes=probes, rewrites=rewrites,
                           replicates=args.replicates, seed=args.seed, cut=args.cut,
                           ngram=args.ngram, fresh_controls=not args.no_controls,
                           known_texts=not args.no_controls, cache=cache,
                           rewriter=args.rewriter, progress=progress, data_label=label,
                           say=say)
    files = result.write_report(out, top=args.top)
    if not args.quiet:
        for row in result.verbatim_summary.to_dict("records"):
            print(f"{row['model']}: suspects {row['n_suspects']}/{row['n_items']} "
                  f"({pct(row['suspect_rate'])}, 95% CI {pct(row['ci_low'])}-"
                  f"{pct(row['ci_high'])}); chance {pct(row['chance_rate'])} "
                  f"(95th pct {pct(row['chance_high'])}); p = {pvalue(row['p_value'])}")
        for row in result.completion_summary.to_dict("records"):
            print(f"{row['model']}: completion [{row['group']}] n={row['n']} n-gram overlap "
                  f"{pct(row['ngram_overlap'])}, similarity {pct(row['similarity'])}")
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
    print(f"leakage report: {files['html']}")
    return 0


def _estimate(args: argparse.Namespace, items: list, models: list[str], probes: list[str],
              rewrites: list[str], cache: Any) -> int:
    from robustify.probes.leakage import PROBES
    from robustify.probes.leakage.estimate import estimate_leakage

    bad = [p for p in probes if p not in PROBES]
    if bad or not probes:
        raise ConfigError(f"unknown probe(s) {', '.join(bad) or '(none given)'}; choose from "
                          f"{', '.join(PROBES)}")
    rows = estimate_leakage(items, models, probes=probes, rewrites=rewrites,
                            replicates=args.replicates, seed=args.seed, cut=args.cut,
                            fresh_controls=not args.no_controls,
                            known_texts=not args.no_controls, cache=cache)
    total, known = 0.0, True
    for row in rows:
        line = f"{row['probe']} {row['model']}: {row['calls']} calls, {row['cache_hits']} cache hits"
        if row["estimated_s"] is not None:
            total += row["estimated_s"]
            line += (f"; {row['latency_s']:.2f} s per call, {row['concurrency']} at a time: "
                     f"about {row['estimated_s']:.0f} s")
        elif row["calls"]:
            known = False
        print(line)
    if known:
        print(f"estimated time: about {total:.0f} s")
    return 0
