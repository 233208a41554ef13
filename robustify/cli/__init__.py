"""``python -m robustify``: the command line, one module per verb.

Verbs: ``transforms`` (the catalogue), ``perturb`` (write a frozen variants file),
``run`` (the whole job), ``calibrate`` (fit noise to real messages), ``leakage`` and
``compare`` (probes), ``report`` (rebuild a report from a saved run). Each verb module has ``add_parser(subparsers)`` and
``handle(args) -> exit code``; the verb modules import heavy libraries only in
``handle``, so ``python -m robustify transforms`` starts quickly.

Exit codes: 0 success, 1 a gate failed (drop above threshold, too many errors),
2 bad input or configuration (one line on stderr, no traceback), 3 the analysis failed
after the model calls (answers kept in the cache), 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from perturbations.errors import RobustifyError
from perturbations.version import __version__

from robustify.cli import calibrate, compare, leakage, perturb, report, run, transforms
from robustify.atomic import quiet_broken_pipe
from robustify.cli.common import (EXIT_ANALYSIS, EXIT_GATE, EXIT_OK, EXIT_USAGE, Parser,
                                  one_line)
from robustify.errors import AnalysisError

__all__ = ["main", "build_parser", "VERBS", "EXIT_OK", "EXIT_GATE", "EXIT_USAGE",
           "EXIT_ANALYSIS"]

VERBS = (transforms, perturb, run, calibrate, leakage, compare, report)
"""The verb modules, in the order ``--help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to generate the README's CLI section)."""
    parser = Parser(prog="python -m robustify",
                    description="Stress-test language models on noisy, real-user versions of "
                                "benchmark items.")
    parser.add_argument("--version", action="version", version=f"robustify {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=Parser)
    for verb in VERBS:
        verb.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                            format="%(levelname)s %(name)s: %(message)s")
        if not getattr(args, "handler", None):
            parser.print_help()
            return EXIT_USAGE
        return int(args.handler(args))
    except AnalysisError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return EXIT_ANALYSIS
    except RobustifyError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `python -m robustify transforms | head`
        return quiet_broken_pipe()
    except KeyboardInterrupt:
        print("interrupted: answers received so far are in the response cache; run the same "
              "command again to resume", file=sys.stderr)
        return 130


def _one_line(exc: BaseException) -> str:
    from robustify.models.base import one_line

    return one_line(exc, limit=4000)  # also masks anything shaped like an API key


