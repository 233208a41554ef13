"""``perturb``: write a frozen variants file (no model calls)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from perturbations import parse_spec_list, perturb_items
from perturbations.errors import ConfigError
from perturbations.spec import parse_severity

from robustify.atomic import check_writable
from robustify.cli.common import EXIT_OK, add_data_args, add_transform_args, int_at_least

__all__ = ['add_parser', 'handle']


def add_parser(subparsers: Any) -> None:
    """Add this verb to the CLI's subparsers."""
    p = subparsers.add_parser("perturb", help="write a frozen variants file (no model calls)",
                       epilog="example: python -m robustify perturb --data sample "
                              "--transforms typos,slang --severity low,high --out variants.jsonl")
    add_data_args(p)
    add_transform_args(p)
    p.add_argument("--out", required=True, help="variants JSONL to write (atomically)")
    p.add_argument("--workers", type=int_at_least(1), default=1,
                   help="processes to use (output is identical for any number)")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from robustify.atomic import write_text_atomic
    from robustify.data import load_items

    specs = parse_spec_list(args.transforms or ["typos", "slang", "truncation", "ambiguity"])
    severities = args.severity  # None: the defaults, fitted profiles at their fitted level
    for s in severities or ():
        parse_severity(s, where="--severity")
    out = Path(args.out)
    if out.is_dir():
        raise ConfigError(f"{out}: is a directory; --out needs a file name")
    check_writable(out.parent if str(out.parent) else Path("."))
    items = load_items(args.data or "sample", format=args.format, mapping=args.map,
                       limit=args.limit, seed=args.seed or 0, task=args.task)
    variants = perturb_items(items, specs, severities=severities, seed=args.seed or 0,
                             replicates=args.replicates or 1, workers=args.workers)
    lines = [v.to_json() + "\n" for v in variants]
    write_text_atomic(out, "".join(lines))
    changed = sum('"changed": true' in line for line in lines)
    print(f"wrote {len(lines)} variants of {len(items)} items to {out} "
          f"({changed} changed, {len(lines) - changed} unchanged)", file=sys.stderr)
    return EXIT_OK
