"""``report``: rebuild a run's report from its saved results (no model calls)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from perturbations.errors import ConfigError

from robustify.atomic import check_writable
from robustify.cli.common import EXIT_OK

__all__ = ['add_parser', 'handle']


def add_parser(subparsers: Any) -> None:
    """Add this verb to the CLI's subparsers."""
    p = subparsers.add_parser("report", help="rebuild a run's report from its saved results (no model calls)")
    p.add_argument("run_dir", help="a run folder written by 'run'")
    p.add_argument("--out", help="write the rebuilt report into this folder instead (the run "
                                 "folder is left as it is)")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from robustify.pipeline import RunResult

    run_dir = Path(args.run_dir)
    if not (run_dir / "results.jsonl").is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no results.jsonl)")
    out = Path(args.out) if args.out else run_dir
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: is a file; --out needs a folder")
    check_writable(out)
    result = RunResult.load(run_dir)
    files = result.write_report(out)
    print(f"report: {files['html']}")
    return EXIT_OK
