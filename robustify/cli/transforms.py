"""``transforms``: the catalogue of every transform and profile, from the registry."""

from __future__ import annotations

import argparse
from typing import Any

from perturbations import all_transforms
from perturbations.spec import SEVERITY_PRESETS

from robustify.cli.common import EXIT_OK

__all__ = ['add_parser', 'handle']


def add_parser(subparsers: Any) -> None:
    """Add this verb to the CLI's subparsers."""
    p = subparsers.add_parser("transforms", help="list every transform and profile")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table (README catalogue)")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    rows = []
    for name, cls in all_transforms().items():
        options = ", ".join(
            f"{k}={'|'.join(o.choices) if o.choices else o.default}" for k, o in cls.OPTIONS.items()
            if k != "fields")
        parts = getattr(cls, "PARTS", ())
        if parts:  # profiles: show what they compose, with each part's severity factor
            options = " + ".join(f"{p.spec()} x{p.scale:g}" for p in parts)
        rows.append((name, cls.family, cls.label_policy, cls.summary(), cls.severity_doc(), options))
    if args.markdown:
        print("| transform | family | label | what it does | severity means | options |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            print("| " + " | ".join(f"`{r[0]}`" if i == 0 else str(c).replace("|", "\\|")
                                    for i, c in enumerate(r)) + " |")
        print()
        presets = ", ".join(f"{k}={v}" for k, v in SEVERITY_PRESETS.items())
        print(f"Severity presets: {presets}. Every transform also takes "
              f"`fields=input|context|choices` (default `input`).")
        return EXIT_OK
    width = max(len(r[0]) for r in rows)
    for name, family, policy, summary, severity, options in rows:
        print(f"{name:<{width}}  [{family}, {policy}]  {summary}")
        print(f"{'':<{width}}  severity: {severity}")
        if options:
            print(f"{'':<{width}}  options: {options}")
    return EXIT_OK
