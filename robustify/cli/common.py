"""What every verb shares: the parser class, argument types, shared flags, exit codes."""

from __future__ import annotations

import argparse
import json
import re
import math
from typing import Any

from perturbations import TASK_KINDS
from perturbations.errors import ConfigError

__all__ = ["Parser", "csv_list", "int_at_least", "number", "key_value", "add_data_args",
           "add_transform_args", "one_line", "EXIT_OK", "EXIT_GATE", "EXIT_USAGE",
           "EXIT_ANALYSIS"]

EXIT_OK, EXIT_GATE, EXIT_USAGE, EXIT_ANALYSIS = 0, 1, 2, 3
"""Success; a gate failed; bad input or configuration; the analysis failed after the calls."""


_MAP_PAIR = re.compile(r"(?:id|input|target|context|choices|task|items|meta\.\w{1,40})="
                       r"[\w.|-]{1,60}")
"""A ``--map`` pair typed after a space (``--map input=q target=a``): named in the error."""


class Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2.

    Abbreviations are off: ``--api-key sk-...`` must not silently become
    ``--api-key-env sk-...`` (and then be echoed in an error).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        if message.startswith("unrecognized arguments:"):
            # list only the flags: a stray value may be a secret typed on the command line
            words = message.split(":", 1)[1].split()
            flags = [t for t in words if t.startswith("-")]
            stray = [t for t in words if _MAP_PAIR.fullmatch(t)]  # field names, not secrets
            message = "unrecognized arguments: " + (" ".join(flags + stray)
                                                     or "(values without a flag)")
            if stray:
                message += (f" ({stray[0]} looks like a --map pair: join the pairs with "
                            f"commas, no spaces, e.g. --map input=question,{stray[0]})")
        raise ConfigError(f"{self.prog}: {message}")


def csv_list(text: str) -> list[str]:
    """argparse type: comma-separated names; an empty list (``,,``) is an error, not the
    default."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return items


def int_at_least(minimum: int):
    """argparse type: a whole number >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


def number(text: str) -> float:
    """argparse type: any finite number (``nan`` and ``inf`` are refused: a NaN gate never
    fires, a NaN temperature reaches the model)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def key_value(text: str) -> tuple[str, Any]:
    from robustify.pipeline.jobfile import check_param_name

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError("expected KEY=VALUE")
    try:
        check_param_name(key.strip())
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    try:
        value = json.loads(raw)  # numbers, booleans, lists
    except ValueError:
        value = raw
    return key.strip(), value


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="benchmark file, HF dataset folder, or 'sample' (built in; default)")
    p.add_argument("--format", help="format or preset (detected when omitted): "
                                    "jsonl json csv tsv parquet hf mmlu gsm8k boolq arc intent")
    p.add_argument("--map", help="field mapping, e.g. input=question,target=answer,meta.subject=topic")
    p.add_argument("--task", choices=TASK_KINDS, help="task kind for every row (inferred when omitted)")
    p.add_argument("--limit", type=int_at_least(1), help="seeded sample of N items")


def add_transform_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--transforms", type=csv_list,
                   help="comma-separated specs, e.g. typos,slang@high,typos:kind=keyboard@0.3 "
                        "(default: typos,slang,truncation,ambiguity)")
    p.add_argument("--severity", type=csv_list,
                   help="severities for specs without one: numbers in [0,1] or low,medium,high "
                        "(default: low,medium,high)")
    p.add_argument("--seed", type=int_at_least(0), help="seed for every variant (default 0)")
    p.add_argument("--replicates", type=int_at_least(1),
                   help="independent variants per item and spec (default 1)")


def one_line(exc: BaseException) -> str:
    """The error as one bounded line, with anything shaped like a key masked."""
    from robustify.models.base import one_line as _one_line

    return _one_line(exc, limit=4000)

