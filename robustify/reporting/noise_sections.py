"""Report sections on the noise itself: is it what people type, and did the answer survive?

Two sections of the run report, built from the run's ``manifest.json``:

* **Realism** (``manifest["realism"]``): the statistics of each setting's variants beside
  the clean items and, with ``--realism-ref FILE``, beside the user's real traffic, with
  the distance to it and the statistics outside its range.
* **Variants** (``manifest["variants"]``, :meth:`perturbations.VariantTally.rows`): per
  spec, what the gold guard redrew or dropped, how many variants came out unchanged and
  why, and the edit rates of the field that was perturbed.
"""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from robustify.reporting.document import Block, Heading, Paragraph, Table, frame_table
from robustify.reporting.format import MISSING, is_missing, num, pct

__all__ = ["realism_blocks", "variant_blocks", "TYPING_STUDIES"]

TYPING_STUDIES = (
    "Measured human typing for scale: people leave 1.17% of characters wrong on physical "
    "keyboards (Dhakal et al., CHI 2018, 168,000 volunteers) and 2.3% on phones (Palin et "
    "al., MobileHCI 2019, 37,370 volunteers), about 6 and 12 errors per 100 words; sent "
    "support and assistant messages show far fewer (0.6-1.2 non-words per 100 words in the "
    "corpora robustify ships). Fit your own traffic with python -m robustify calibrate.")


def _cell(value: Any) -> str:
    if is_missing(value):
        return MISSING
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def realism_blocks(manifest: Mapping[str, Any] | None) -> list[Block]:
    """The realism table: each setting's variants measured like real messages."""
    realism = (manifest or {}).get("realism") or {}
    rows = realism.get("rows") or []
    if not rows:
        return []
    specs = [str(x) for x in (manifest or {}).get("specs") or []]
    # one order whatever the key order manifest.json kept (a rebuilt report is identical):
    # the clean items, other references by name, then the specs in run order
    names = sorted((k for k in rows[0] if k != "statistic"),
                   key=lambda n: (1, specs.index(n), "") if n in specs
                   else (0, 0 if n == "clean items" else 1, n))
    reference = realism.get("reference")
    blocks: list[Block] = [Heading("Realism: is this the noise people type?", 2, "realism")]
    if reference:
        blocks.append(Paragraph(
            f"Statistics of up to {realism.get('per_spec', 'the first')} variants per setting, "
            f"beside the real traffic in {reference}. A distance of about 1 or less is within "
            f"sampling noise of that traffic; the last row names the statistics outside its "
            f"range. Settings far from it measure stress, not the production drop.", "note"))
    else:
        blocks.append(Paragraph(
            f"Statistics of up to {realism.get('per_spec', 'the first')} variants per setting, "
            f"beside the clean items. Give real user messages with --realism-ref FILE to see "
            f"how far each setting is from the traffic your model will meet.", "note"))
    table_rows = [[r["statistic"], *(_cell(r.get(n)) for n in names)] for r in rows]
    blocks.append(Table.of(["statistic", *names], table_rows,
                           set(range(1, len(names) + 1))))
    blocks.append(Paragraph(TYPING_STUDIES, "note"))
    return blocks


def _violations(value: Any) -> str:
    if not isinstance(value, Mapping) or not value:
        return "none"
    return ", ".join(f"{kind} {n}" for kind, n in sorted(value.items()))


def _reasons(value: Any) -> str:
    if not isinstance(value, Mapping) or not value:
        return ""
    return "; ".join(f"{reason} ({n})" for reason, n in sorted(value.items()))


def _rate(value: Any) -> str:
    return MISSING if is_missing(value) else pct(value)


def variant_blocks(manifest: Mapping[str, Any] | None) -> list[Block]:
    """The variants table: guard outcomes, unchanged shares and per-field edit rates."""
    rows = (manifest or {}).get("variants") or []
    if not rows:
        return []
    frame = pd.DataFrame(rows)
    redrawn, dropped = int(frame["redrawn"].sum()), int(frame["dropped"].sum())
    return [
        Heading("Variants: did the right answer survive?", 2, "variants"),
        Paragraph(
            f"Every variant passed the gold guard before it was asked: numbers, negations, "
            f"the upper-case words that decide a question, names and terms, option "
            f"references and the answer itself are kept by label-preserving transforms "
            f"(docs/guard.md). {redrawn} variants were redrawn from the same seed and "
            f"{dropped} dropped because no draw kept them. Unchanged variants add no noise "
            f"and dilute the drop; their share and reason are listed. Edit rates are of the "
            f"field that was perturbed (words, characters), and for typos the realised share "
            f"of eligible words against the nominal one.", "note"),
        frame_table(frame, [
            ("spec", "spec"), ("drawn", "drawn", num), ("redrawn", "redrawn", num),
            ("dropped", "dropped", num), ("guard caught", "violations", _violations),
            ("unchanged", "unchanged_share", _rate), ("why unchanged", "skip_reasons", _reasons),
            ("question words edited", "input_words", _rate),
            ("question chars edited", "input_chars", _rate),
            ("options edited", "choices_words", _rate),
            ("typo rate: realised", "realised_word_rate", _rate),
            ("nominal", "nominal_word_rate", _rate),
        ], text={"spec", "guard caught", "why unchanged"}),
    ]
