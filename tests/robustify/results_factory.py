"""Synthetic results frames for tests: hand-built rows and realistic seeded runs.

Two tools:

* :func:`row` / :func:`frame` build a results frame row by row with every column of
  ``RESULT_COLUMNS`` filled, for tests with exactly known answers.
* :func:`make_results` builds a realistic multi-model, multi-transform run (clean rows,
  variants at low/medium/high, failures, unparseable answers, clarification requests,
  metadata columns), deterministic for a seed, for charts and reports.

Other engineers may reuse this module: ``from tests.robustify.results_factory import ...``.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from robustify.records import RESULT_COLUMNS

__all__ = ["row", "frame", "known_drop_frame", "make_results", "PRESETS", "HOSTILE_TEXTS"]

PRESETS: tuple[tuple[str, float], ...] = (("low", 0.2), ("medium", 0.5), ("high", 0.8))
"""The severity presets of the perturbations package."""

HOSTILE_TEXTS: tuple[str, ...] = (
    "<script>document.title='PWNED-script';document.body.setAttribute('data-pwned','script')"
    "</script>",
    "<img src=x onerror=\"document.title='PWNED-img';"
    "document.body.setAttribute('data-pwned','img')\">",
    "<a href=\"javascript:alert(1)\">click me</a>",
)
"""Model outputs that would run script if a report interpolated them raw."""


def _vid(*parts: Any) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:16]


def row(model: str, item_id: str, spec: str = "clean", score: float = 1.0, **fields: Any
        ) -> dict[str, Any]:
    """One results row with every column filled with a plausible default.

    ``spec`` may be ``clean`` or ``name@severity`` (e.g. ``typos@0.5``); transform and
    severity are derived from it unless given.
    """
    if spec == "clean":
        transform, severity = "clean", 0.0
    else:
        name, _, sev = spec.partition("@")
        transform, severity = name.split(":")[0], float(sev or 0.5)
    labels = {0.2: "low", 0.5: "medium", 0.8: "high"}
    right = not math.isnan(score) and score >= 0.5
    base: dict[str, Any] = {
        "model": model, "item_id": item_id,
        "variant_id": _vid(item_id, spec, fields.get("replicate", 0)),
        "spec": spec, "transform": fields.pop("transform", transform),
        "severity": fields.pop("severity", severity),
        "severity_label": labels.get(severity) if spec != "clean" else None,
        "replicate": 0, "changed": spec != "clean", "edit_rate": 0.0 if spec == "clean" else 0.1,
        "label_policy": "preserves", "task": "multiple_choice",
        "input": f"Question {item_id}?", "target": "A",
        "response": "A" if right else "B", "parsed": "A" if right else "B",
        "score": score, "unparseable": False, "score_detail": None, "error": None, "latency": 0.01,
        "cached": False, "tokens_in": 20, "tokens_out": 3,
    }
    base.update(fields)
    return base


def frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """A results frame from rows; ``RESULT_COLUMNS`` first, ``meta.*`` columns after."""
    df = pd.DataFrame(list(rows))
    extra = [c for c in df.columns if c not in RESULT_COLUMNS]
    return df[[c for c in RESULT_COLUMNS if c in df.columns] + extra]


def known_drop_frame(n_items: int = 10, n_wrong: int = 3, *, model: str = "m",
                     spec: str = "typos@0.5") -> pd.DataFrame:
    """Clean all right; under ``spec`` the first ``n_wrong`` items turn wrong."""
    rows = []
    for i in range(n_items):
        item = f"q{i:02d}"
        rows.append(row(model, item, "clean", 1.0))
        rows.append(row(model, item, spec, 0.0 if i < n_wrong else 1.0))
    return frame(rows)


_QUESTIONS = (
    "Which planet is known as the red planet?",
    "What is the boiling point of water at sea level in Celsius?",
    "Who wrote the play Romeo and Juliet?",
    "How many legs does a spider have?",
    "What gas do plants absorb from the air?",
    "Which ocean is the largest on Earth?",
    "What is the capital city of Australia?",
    "How many minutes are there in two hours?",
)


def _typo(text: str, rng: np.random.Generator, severity: float) -> str:
    words = text.split(" ")
    n = max(1, int(round(len(words) * severity * 0.6)))
    for index in sorted(rng.choice(len(words), size=min(n, len(words)), replace=False)):
        word = words[index]
        if len(word) > 3:
            k = int(rng.integers(1, len(word) - 2))
            words[index] = word[:k] + word[k + 1] + word[k] + word[k + 2:]
    return " ".join(words)


def _slang(text: str, rng: np.random.Generator, severity: float) -> str:
    out = text.replace("What is", "wat's").replace("How many", "how many lol")
    return ("yo " + out.lower()) if severity >= 0.5 else out


def _truncate(text: str, rng: np.random.Generator, severity: float) -> str:
    words = text.split(" ")
    keep = max(1, int(round(len(words) * (1 - severity * 0.7))))
    return " ".join(words[:keep])


_TRANSFORMS = {"typos": ("preserves", _typo), "slang": ("preserves", _slang),
               "truncation": ("may_break", _truncate)}


def make_results(models: Sequence[str] = ("local:smollm2", "openai:gpt-4o-mini"), *,
                 transforms: Sequence[str] = ("typos", "slang", "truncation"),
                 n_items: int = 24, replicates: int = 1, seed: int = 0,
                 clean_accuracy: Mapping[str, float] | None = None,
                 flip_prob: Mapping[str, float] | None = None,
                 fail_rate: float = 0.02, hostile: bool = False) -> pd.DataFrame:
    """A realistic seeded results frame.

    Args:
        models: Model labels, in order.
        transforms: Any of ``typos``, ``slang`` (label-preserving) and ``truncation``
            (``may_break``: some answers ask for clarification).
        n_items: Items per model.
        replicates: Variants per item x spec.
        seed: Seed of the generator (the frame is a pure function of the arguments).
        clean_accuracy: Probability of a right clean answer per model (default 0.55 + 0.3 i).
        flip_prob: Per transform, probability at severity 1 that a right answer turns wrong.
        fail_rate: Share of perturbed calls that fail (score NaN, error set).
        hostile: Make some responses HTML/JS payloads (see :data:`HOSTILE_TEXTS`).
    """
    rng = np.random.default_rng(seed)
    clean_accuracy = dict(clean_accuracy or {m: 0.55 + 0.3 * i / max(1, len(models) - 1)
                                             for i, m in enumerate(models)})
    flip_prob = dict(flip_prob or {"typos": 0.3, "slang": 0.45, "truncation": 0.8})
    domains = ("science", "geography", "literature")
    rows = []
    letters = "ABCD"
    for m_index, model in enumerate(models):
        for i in range(n_items):
            item_id = f"item-{i:03d}"
            question = _QUESTIONS[i % len(_QUESTIONS)]
            target = letters[i % 4]
            wrong = letters[(i + 1) % 4]
            meta = {"meta.domain": domains[i % 3], "meta.difficulty": ("easy", "hard")[i % 2]}
            right = bool(rng.random() < clean_accuracy[model])
            response = f"The answer is {target}." if right else f"The answer is {wrong}."
            if hostile and i == 0:
                response = HOSTILE_TEXTS[m_index % len(HOSTILE_TEXTS)] + f" {target}"
            rows.append({**row(model, item_id, "clean", 1.0 if right else 0.0, input=question,
                               target=target, response=response,
                               parsed=target if right else wrong, changed=False,
                               edit_rate=0.0, latency=0.2), **meta})
            for transform in transforms:
                policy, fn = _TRANSFORMS[transform]
                for label, severity in PRESETS:
                    for rep in range(replicates):
                        text = fn(question, rng, severity)
                        p_flip = flip_prob.get(transform, 0.3) * severity
                        now_right = (right and rng.random() >= p_flip) or (
                            not right and rng.random() < 0.08)
                        fields: dict[str, Any] = dict(
                            replicate=rep, label_policy=policy, input=text, target=target,
                            changed=text != question, severity_label=label,
                            edit_rate=round(float(np.mean([a != b for a, b in
                                                           zip(text, question)] or [0])), 4),
                            response=(f"The answer is {target}." if now_right
                                      else f"The answer is {wrong}."),
                            parsed=target if now_right else wrong, latency=0.2)
                        score = 1.0 if now_right else 0.0
                        draw = rng.random()
                        if draw < fail_rate:
                            fields.update(response=None, parsed=None, error="TimeoutError: 30s",
                                          latency=30.0)
                            score = math.nan
                        elif not now_right and policy == "may_break" and draw < 0.45:
                            fields.update(response="Your question seems cut off - could you "
                                                   "clarify what you mean?",
                                          parsed=None, unparseable=True)
                        elif not now_right and draw < 0.15:
                            fields.update(response="I cannot tell.", parsed=None,
                                          unparseable=True)
                        if hostile and i == 1 and not now_right and fields["response"]:
                            fields["response"] = HOSTILE_TEXTS[(m_index + 1) % len(HOSTILE_TEXTS)]
                        rows.append({**row(model, item_id, f"{transform}@{severity}", score,
                                           **fields), **meta})
    return frame(rows)
