"""``calibrate``: fit a noise profile to a file of real user messages (no labels needed)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from perturbations.errors import ConfigError

from robustify.cli.common import EXIT_OK, int_at_least

__all__ = ["add_parser", "handle"]


def add_parser(subparsers: Any) -> None:
    """Add this verb to the CLI's subparsers."""
    p = subparsers.add_parser(
        "calibrate", help="fit a noise profile to real user messages (no labels needed)",
        description="Measure the noise of real messages (typos, casing, punctuation, "
                    "contractions, texting forms, whitespace, length) and write a profile "
                    "whose variants of clean benchmark items reproduce it.",
        epilog="example: python -m robustify calibrate --from tickets.csv --map input=body "
               "--out support.yaml; then: python -m robustify run --transforms "
               "profile:support.yaml")
    p.add_argument("--from", dest="source", required=True, metavar="FILE",
                   help="real messages: one per line (.txt), or a column of a CSV, TSV, "
                        "JSONL, JSON or Parquet file")
    p.add_argument("--out", required=True, help="profile file to write (.yaml; .json for JSON)")
    p.add_argument("--map", help="the column holding the messages: input=COLUMN")
    p.add_argument("--format", help="lines, or a --format name, when the file name does not tell")
    p.add_argument("--data", help="fit on this benchmark's questions (default: 60 clean "
                                  "questions shipped with robustify)")
    p.add_argument("--limit", type=int_at_least(1), help="use the first N messages")
    p.add_argument("--seed", type=int, default=0, help="seed of the fit (default 0)")
    p.set_defaults(handler=handle)


def _column(mapping: str | None) -> str | None:
    if not mapping:
        return None
    key, sep, value = mapping.partition("=")
    if not sep or key.strip() != "input" or not value.strip() or "," in value:
        raise ConfigError(f"--map: calibrate reads one column, written input=COLUMN; got "
                          f"{mapping!r}")
    return value.strip()


def handle(args: argparse.Namespace) -> int:
    from robustify.calibration import calibrate

    result = calibrate(args.source, args.out, column=_column(args.map), format=args.format,
                       data=args.data, seed=args.seed, limit=args.limit)
    profile = result.profile
    print(f"{profile.target.n} messages measured; fitted profile:")
    for part in profile.parts:
        print(f"  {part.spec()}  severity {part.severity:g}, on {part.share:.0%} of items")
    for note in profile.notes:
        print(f"  note: {note}")
    print()
    print(result.format_table())
    print(f"\nwrote {result.path}; use it with --transforms profile:{result.path} "
          f"(add --severity to scale it as stress)", file=sys.stderr)
    return EXIT_OK
