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
    p.add_argument("--out", required=True, help="variants JSONL to write (atomically); with "
                                                "--export, the export's file or folder")
    p.add_argument("--export", choices=("csv", "jsonl-flat", "hf"),
                   help="write flat input/target rows (clean items and variants) for other "
                        "harnesses instead of a variants file: csv, jsonl-flat, or hf (a "
                        "folder with a dataset card); label sets go to a separate file")
    p.add_argument("--workers", type=int_at_least(1), default=1,
                   help="processes to use (output is identical for any number)")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from robustify.atomic import write_jsonl_atomic
    from robustify.data import load_items

    specs = parse_spec_list(args.transforms or ["typos", "slang", "truncation", "ambiguity"])
    severities = args.severity  # None: the defaults, fitted profiles at their fitted level
    for s in severities or ():
        parse_severity(s, where="--severity")
    out = Path(args.out)
    if out.is_dir() and args.export != "hf":
        raise ConfigError(f"{out}: is a directory; --out needs a file name")
    if args.export == "hf" and out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: is a file; --export hf writes a folder")
    check_writable(out.parent if str(out.parent) else Path("."))
    items = load_items(args.data or "sample", format=args.format, mapping=args.map,
                       limit=args.limit, seed=args.seed or 0, task=args.task)
    variants = perturb_items(items, specs, severities=severities, seed=args.seed or 0,
                             replicates=args.replicates or 1, workers=args.workers)
    if args.export:
        return _export(items, variants, out, args)
    counted = _Count(variants)
    write_jsonl_atomic(out, (v.to_json() for v in counted))  # streamed: no list of variants
    print(f"wrote {counted.total} variants of {len(items)} items to {out} "
          f"({counted.changed} changed, {counted.total - counted.changed} unchanged)",
          file=sys.stderr)
    return EXIT_OK


class _Count:
    """Pass variants through, counting them and the changed ones."""

    def __init__(self, variants: Any) -> None:
        self._variants = variants
        self.total = 0
        self.changed = 0

    def __iter__(self) -> Any:
        for variant in self._variants:
            self.total += 1
            self.changed += bool(variant.changed)
            yield variant


def _export(items: list, variants: Any, out: Path, args: argparse.Namespace) -> int:
    from perturbations.version import __version__

    from robustify.data.export import export_variants, flat_rows, label_sets

    rows = flat_rows(items, variants, seed=args.seed or 0, version=__version__)
    written, note = export_variants(rows, label_sets(items), out, args.export)
    print(f"exported {len(items)} clean items and {len(rows) - len(items)} variants "
          f"({args.export}) to {', '.join(str(p) for p in written)}", file=sys.stderr)
    if note:
        print(f"note: {note}", file=sys.stderr)
    return EXIT_OK
