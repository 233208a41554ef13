"""``compare``: compare run folders (clean score, noisy score and drop), paired with CIs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from perturbations.errors import ConfigError

from robustify.atomic import check_writable, slug

__all__ = ["add_parser", "handle", "print_settings_diff"]


def add_parser(subparsers: Any) -> None:
    """Add the ``compare`` verb to the CLI's subparsers (``handler=`` is set)."""
    p = subparsers.add_parser(
        "compare", help="compare runs: how clean score, noisy score and drop changed",
        description="Compare two or more run folders written by 'run', per transform and "
                    "severity, paired on item and spec, with bootstrap intervals.",
        epilog="example: python -m robustify compare reports/v1 reports/v2 --out reports/v1-v2")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders (the first is the baseline)")
    p.add_argument("--out", help="folder for compare.html/.md/.csv (default "
                                 "reports/compare__<first>__<last>)")
    p.add_argument("--labels", help="comma-separated names for the runs (default folder names)")
    p.add_argument("--consecutive", action="store_true",
                   help="compare each run with the one before it instead of with the first")
    p.add_argument("--models", help="model matching when labels differ: A=B[,C=D]")
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap draws (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--quiet", action="store_true", help="print only the report path")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from robustify.probes.compare import (CLEAN_ROW, compare_runs, comparison_label,
                                          write_comparison_report)
    from robustify.reporting.format import ci, pct, pp

    if len(args.runs) < 2:
        raise ConfigError("compare needs at least two run folders")
    if args.n_boot < 0:
        raise ConfigError(f"--n-boot must be >= 0, got {args.n_boot}")
    labels = [x.strip() for x in args.labels.split(",")] if args.labels else None
    models = None
    if args.models:
        models = {}
        for pair in args.models.split(","):
            a, sep, b = pair.partition("=")
            if not sep or not a.strip() or not b.strip():
                raise ConfigError(f"--models expects A=B pairs, got {pair!r}")
            models[a.strip()] = b.strip()
    names = labels or [Path(r).name for r in args.runs]
    if not args.quiet:
        print_settings_diff(args.runs, names, consecutive=args.consecutive)
    table = compare_runs(args.runs, labels, consecutive=args.consecutive, models=models,
                         n_boot=args.n_boot, seed=args.seed)
    out = Path(args.out) if args.out else Path("reports") / slug(
        f"compare__{names[0]}__{names[-1]}", limit=None)
    check_writable(out)
    files = write_comparison_report(table, out)
    if not args.quiet:
        for r in table.to_dict("records"):
            if r["transform"] == CLEAN_ROW:
                print(f"\n{r['run_a']} → {r['run_b']}  {r['model_b']}: clean "
                      f"{pct(r['clean_a'])} → {pct(r['clean_b'])} "
                      f"({pp(r['clean_change_pp'])} pp)")
                continue
            print(f"  {comparison_label(r):<28} drop {pp(r['drop_a_pp']):>6} → {pp(r['drop_b_pp']):>6} pp"
                  f"  change {pp(r['drop_change_pp']):>6} "
                  f"{ci(r['drop_change_ci_low_pp'], r['drop_change_ci_high_pp'])}"
                  f"{'' if r['paired'] else '  (unpaired)'}")
        for note in table.attrs.get("notes", []):
            print(f"note: {note}", file=sys.stderr)
    print(f"comparison report: {files['html']}")
    return 0


def print_settings_diff(runs: list[str], names: list[str], *, consecutive: bool = False,
                        out: Any = None) -> None:
    """Print what differs between the compared runs' settings, before any number."""
    from robustify.probes.compare.settings import read_manifest, settings_diff

    out = out if out is not None else sys.stdout
    manifests = [read_manifest(r) for r in runs]
    for j in range(1, len(runs)):
        i = j - 1 if consecutive else 0
        a, b = names[i] if i < len(names) else runs[i], names[j] if j < len(names) else runs[j]
        if not manifests[i] or not manifests[j]:
            print(f"settings {a} → {b}: no manifest.json in "
                  f"{runs[i] if not manifests[i] else runs[j]}", file=out)
            continue
        diff = settings_diff(manifests[i], manifests[j])
        if not diff:
            print(f"settings {a} → {b}: the same (model, data, transforms, seed, params, "
                  f"scorer)", file=out)
            continue
        print(f"settings {a} → {b} that differ:", file=out)
        width = max(len(k) for k, _, _ in diff)
        for key, va, vb in diff:
            print(f"  {key:<{width}}  {_short(va)} → {_short(vb)}", file=out)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."
