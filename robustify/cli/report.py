"""``report``: rebuild a run's report from its saved results (no model calls)."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Any

from perturbations.errors import ConfigError

from robustify.atomic import check_out_folder, check_writable
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
    from robustify.pipeline.run import folder_lock, write_run_folder

    run_dir = Path(args.run_dir)
    if not (run_dir / "results.jsonl").is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no results.jsonl)")
    incomplete = ConfigError(f"{run_dir}: incomplete run folder (no manifest.json): the run "
                             f"that wrote it did not finish; run it again to complete it")
    if not (run_dir / "manifest.json").is_file():
        raise incomplete
    out = Path(args.out) if args.out else run_dir
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file; --out needs a folder")
    if out != run_dir:
        check_out_folder(out, flag="--out")
        check_writable(out)
    with contextlib.ExitStack() as locks:
        locks.enter_context(folder_lock(run_dir, create=False))  # not while a run writes it
        if not (run_dir / "manifest.json").is_file():
            raise incomplete
        if out != run_dir:
            locks.enter_context(folder_lock(out))
        result = RunResult.load(run_dir)
        write_run_folder(result, out)
    print(f"report: {out / 'report.html'}")
    return EXIT_OK
