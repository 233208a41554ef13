"""What the severity levels mean in people: published typing-error rates, real typed
messages, and the ``realistic`` level of each transform.

Published uncorrected error rates (share of characters left wrong, transcription tasks):

* Dhakal, Feit, Kristensson, Oulasvirta, "Observations on Typing from 136 Million
  Keystrokes", CHI 2018 (168,000 volunteers, physical keyboards): 1.17% of characters
  (SD 1.43) left uncorrected, at 51.6 words per minute.
* Palin, Feit, Kim, Kristensson, Oulasvirta, "How do People Type on Mobile Devices?
  Observations from a Study with 37,000 Volunteers", MobileHCI 2019 (37,370 volunteers,
  phones): 2.3% of characters left uncorrected, at 36.2 words per minute.

At 5.0 characters per word (the clean questions shipped here, space included) that is
5.9 and 11.6 wrong characters per 100 words, which ``typos`` reaches at severity 0.19
and 0.35: ``low`` (0.2) already sits at the physical-keyboard rate of a typing test,
``medium`` and ``high`` beyond the mobile one. Messages people *send* carry far fewer
(auto-correct, short texts, a glance before sending): the two real typed corpora
shipped here (``data/corpus_*.json``) show 0.6-1.2 non-words per 100 words. So
``realistic`` is anchored on sent messages: each transform's realistic severity is
read off the reference profile fitted to those corpora (``data/profile_reference.json``,
:func:`build_reference_profile`); transforms without a counterpart there use ``low``.
"""

from __future__ import annotations

import difflib
import functools
import json
from pathlib import Path
from typing import Mapping, Sequence

from .levels import realistic_severity, realistic_source

__all__ = ["PUBLISHED_RATES", "reference_corpora", "realistic_severity", "realistic_source",
           "build_reference_profile", "errors_per_100_words", "preset_table",
           "CHARS_PER_WORD"]

_DATA = Path(__file__).resolve().parent.parent / "data"

CHARS_PER_WORD = 5.0
"""Characters per word (space included) used to turn character rates into words."""

PUBLISHED_RATES: tuple[Mapping[str, object], ...] = (
    {"study": "Dhakal et al., CHI 2018", "device": "physical keyboard", "people": 168_000,
     "uncorrected_char_rate": 0.0117, "errors_per_100_words": 5.9,
     "cite": "V. Dhakal, A. M. Feit, P. O. Kristensson, A. Oulasvirta. Observations on Typing "
             "from 136 Million Keystrokes. CHI 2018. doi:10.1145/3173574.3174220"},
    {"study": "Palin et al., MobileHCI 2019", "device": "mobile phone", "people": 37_370,
     "uncorrected_char_rate": 0.023, "errors_per_100_words": 11.6,
     "cite": "K. Palin, A. M. Feit, S. Kim, P. O. Kristensson, A. Oulasvirta. How do People "
             "Type on Mobile Devices? Observations from a Study with 37,000 Volunteers. "
             "MobileHCI 2019. doi:10.1145/3338286.3340120"},
)
"""Large published studies of the typing errors people leave uncorrected."""

CORPORA = ("corpus_hwu64.json", "corpus_taskmaster3.json")


@functools.cache
def reference_corpora() -> Mapping[str, tuple[str, ...]]:
    """Name -> messages of the real typed corpora shipped in ``perturbations/data``."""
    out = {}
    for file in CORPORA:
        data = json.loads((_DATA / file).read_text(encoding="utf-8"))
        out[data["name"]] = tuple(m["text"] for m in data["messages"])
    return out


def build_reference_profile(seed: int = 0):
    """Fit the reference profile: both shipped corpora pooled, on the clean questions."""
    from .fit import fit_profile
    from .stats import measure

    messages = [m for texts in reference_corpora().values() for m in texts]
    return fit_profile(measure(messages), seed=seed, name="reference-typed-traffic",
                       source={"files": list(CORPORA), "messages": len(messages)})


def _token_edits(before: str, after: str) -> int:
    from ..text import tokenize

    a = [t.text for t in tokenize(before)]
    b = [t.text for t in tokenize(after)]
    edits = 0
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag != "equal":
            edits += max(i2 - i1, j2 - j1)
    return edits


def errors_per_100_words(spec: str, texts: Sequence[str] | None = None, *, seed: int = 0,
                         replicates: int = 3) -> float:
    """Token edits per 100 words that ``spec`` makes on ``texts`` (default: the clean
    questions): a changed, added or removed word, space run or mark counts once."""
    from ..engine import perturb
    from ..records import Item
    from .fit import clean_questions

    texts = list(texts) if texts is not None else list(clean_questions())
    edits = words = 0
    for i, text in enumerate(texts):
        item = Item(id=f"p{i}", input=text, target="x")
        for r in range(replicates):
            edits += _token_edits(text, perturb(item, spec, seed=seed, replicate=r).item.input)
            words += len(text.split())
    return 100.0 * edits / max(words, 1)


def preset_table(names: Sequence[str] | None = None,
                 levels: Sequence[str] = ("realistic", "low", "medium", "high"),
                 *, replicates: int = 2) -> list[dict[str, object]]:
    """Per transform: its severity and token edits per 100 words at each level.

    Rows: ``{"transform", "source", "<level>": severity, "<level>_per_100": edits}``
    (for ``python -m robustify transforms``).
    """
    from ..registry import transform_names
    from ..spec import parse_spec

    rows = []
    for name in names if names is not None else transform_names():
        row: dict[str, object] = {"transform": name, "source": realistic_source(name)}
        for level in levels:
            spec = parse_spec(f"{name}@{level}")
            row[level] = spec.severity
            row[f"{level}_per_100"] = round(errors_per_100_words(str(spec),
                                                                 replicates=replicates), 2)
        rows.append(row)
    return rows

