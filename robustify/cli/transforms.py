"""``transforms``: the catalogue of every transform and profile, from the registry."""

from __future__ import annotations

import argparse
from typing import Any

from perturbations import all_transforms
from perturbations.spec import SEVERITY_PRESETS

from robustify.cli.common import EXIT_OK

__all__ = ["add_parser", "handle", "levels_table"]


def add_parser(subparsers: Any) -> None:
    """Add this verb to the CLI's subparsers."""
    p = subparsers.add_parser("transforms", help="list every transform and profile")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table (README catalogue)")
    p.add_argument("--levels", action="store_true",
                   help="what each level means: severity and token edits per 100 words at "
                        "realistic/low/medium/high, beside measured human typing (draws "
                        "variants: a few seconds)")
    p.set_defaults(handler=handle)


def levels_table(markdown: bool = False) -> str:
    """Per transform: each level's severity and token edits per 100 words on the clean
    questions, where its realistic level comes from, and the published typing rates."""
    from perturbations.realism import PUBLISHED_RATES, preset_table

    rows = preset_table()
    levels = ("realistic", "low", "medium", "high")
    head = ["transform", *(f"{lv} (edits/100 words)" for lv in levels), "realistic from"]
    body = [[r["transform"], *(f"{r[lv]:g} ({r[f'{lv}_per_100']:.1f})" for lv in levels),
             str(r["source"])] for r in rows]
    studies = "; ".join(f"{s['study']}, {s['device']}: {s['uncorrected_char_rate']:.2%} of "
                        f"characters left wrong, about {s['errors_per_100_words']:g} errors per "
                        f"100 words" for s in PUBLISHED_RATES)
    note = (f"Measured human typing: {studies}. low, medium and high are stress levels beyond "
            f"realistic; a token edit is a changed, added or removed word, space run or mark.")
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(f"`{c}`" if i == 0 else c for i, c in enumerate(row)) + " |"
                  for row in body]
        return "\n".join(lines) + "\n\n" + note
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(f"{c:<{w}}" for c, w in zip(row, widths)).rstrip()
             for row in [head, *body]]
    return "\n".join(lines) + "\n\n" + note


def handle(args: argparse.Namespace) -> int:
    if args.levels:
        print(levels_table(markdown=args.markdown))
        return EXIT_OK
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
