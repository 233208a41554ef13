"""Model-written rewrites: a model retypes each question in a persona, and every rewrite is checked.

Rule-based transforms cannot write like a hurried customer or a non-native speaker; a
model can. This module asks any backend (``local:smollm2``, ``openai:...``,
``python:...``) to rewrite an item's question in a persona or style, then checks every
rewrite before it is used:

* it is not empty and not a refusal ("I'm sorry", "As an AI" ...);
* it is not the question unchanged, and not rambling (over 3x the original words + 15);
* the protected spans survive: numbers (a number word may become digits and back),
  option letters, phrases the item declares under ``metadata["protect"]``
  (:func:`perturbations.text.protected_spans`) and names (capitalised words inside a
  sentence). Personas whose point is to leave details out (``vague``) skip this check
  and are labelled ``may_break``;
* it adds no number the question did not have (the model worked the problem);
* the answer is not leaked: the gold target, its aliases, the correct option's text or
  the class label is not newly present;
* optionally a judge model confirms the two questions ask the same thing.

A rejected rewrite is never used: it is returned with its reasons (a DataFrame, one row
per item) so runs can count and report them. Calls go through the runner, so they are
cached in the :class:`~robustify.runner.cache.ResponseCache` like any other (keyed by the
rewriter's identity, including its seeded :class:`~robustify.records.GenerationParams`,
and the messages), deduplicated and concurrent.

Spec strings (parsed here, not by the transform registry)::

    rewrite:persona=hurried
    rewrite:persona=non_native:model=openai:gpt-4o-mini@http://127.0.0.1:8080/v1
    rewrite:persona=terse_query:temperature=0.7:judge=local:smollm2

``model=`` and ``judge=`` take a whole model spec (colons included), so put them last.
The variant records a canonical spec with the models as slugs, e.g.
``rewrite:persona=hurried:model=local-smollm2``; :func:`rewrite_manifest` records the
full model identity and the prompt.

>>> variants, rejected = rewrite_variants(items, "rewrite:persona=hurried")   # doctest: +SKIP
>>> rejected[["item_id", "reason"]]                                          # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from perturbations import Item, Variant
from perturbations.errors import ConfigError
from perturbations.records import choice_letter
from perturbations.text import edit_rate, protected_spans
from perturbations.version import __version__

from robustify.atomic import slug as _file_slug
from robustify.records import GenerationParams, Score

__all__ = [
    "PERSONAS",
    "Persona",
    "RewriteSpec",
    "RewriteOutcome",
    "REJECTION_COLUMNS",
    "DEFAULT_REWRITER",
    "parse_rewrite_spec",
    "is_rewrite_spec",
    "split_rewrite_specs",
    "rewrite_messages",
    "clean_rewrite",
    "check_rewrite",
    "rewrite_variants",
    "rewrite_manifest",
    "run_rewrite_specs",
]

log = logging.getLogger(__name__)

DEFAULT_REWRITER = "local:smollm2"
"""The rewriter model when a spec names none."""


@dataclass(frozen=True)
class Persona:
    """How a persona is described to the rewriter, and what it does to the label."""

    description: str
    """Completes "Rewrite this question as ..."."""
    label_policy: str = "preserves"
    """``may_break`` for personas that may drop details the answer needs."""
    keep_spans: bool = True
    """Check that numbers, names and protected phrases survive."""


PERSONAS: dict[str, Persona] = {
    "hurried": Persona("a hurried customer typing on a phone: short, casual, lower case, "
                       "no greeting"),
    "non_native": Persona("a non-native English speaker would write it: simple words and a "
                          "few small grammar mistakes"),
    "terse_query": Persona("a terse search-engine query: only the key words, no full "
                           "sentence"),
    "vague": Persona("a vague first message to a help desk: casual and short, leaving some "
                     "details unsaid", label_policy="may_break", keep_spans=False),
    "paraphrase": Persona("a plain paraphrase that uses different words but asks exactly the "
                          "same thing"),
}
"""Built-in personas (``rewrite:persona=NAME``)."""

SYSTEM_PROMPT = ("You rewrite questions the way a particular person would type them. Keep "
                 "every number, name and detail the answer depends on. Never answer the "
                 "question, never add information, never refuse. Reply with the rewritten "
                 "question only.")
"""System message of every rewrite call (recorded in the manifest)."""

USER_TEMPLATE = ("Rewrite this question as {description}.\n\nQuestion: {question}\n\n"
                 "Rewritten question:")
"""User message template (recorded in the manifest)."""

JUDGE_SYSTEM = "You compare two questions and answer with Yes or No only."
JUDGE_TEMPLATE = ("Question 1: {original}\nQuestion 2: {rewrite}\n\nDo both questions ask for "
                  "the same thing, so that they have the same correct answer? Answer Yes or No.")

REJECTION_COLUMNS = ("item_id", "spec", "persona", "rewriter", "replicate", "reason", "reasons",
                     "rewrite", "raw", "original")
"""Columns of the rejected-rewrites frame."""

_OPTION_KEYS = ("persona", "model", "judge", "temperature", "max_tokens")


@dataclass(frozen=True)
class RewriteSpec:
    """A parsed ``rewrite:...`` spec."""

    persona: str
    """Key of :data:`PERSONAS`."""
    model: str = DEFAULT_REWRITER
    """Rewriter model spec."""
    judge: str | None = None
    """Optional judge model spec confirming the meaning."""
    temperature: float = 0.0
    """Sampling temperature of the rewriter (0: one deterministic rewrite per item)."""
    max_tokens: int = 96
    """Answer budget of a rewrite call."""

    @property
    def canonical(self) -> str:
        """The spec recorded on variants: models as slugs, defaults left out."""
        text = f"rewrite:persona={self.persona}:model={_file_slug(self.model, limit=None, empty='model')}"
        if self.temperature:
            text += f":temperature={self.temperature:g}"
        if self.max_tokens != 96:
            text += f":max_tokens={self.max_tokens}"
        if self.judge:
            text += f":judge={_file_slug(self.judge, limit=None, empty='model')}"
        return text

    @property
    def transform(self) -> str:
        """Transform name on variants: one per persona, so summaries keep personas apart."""
        return f"rewrite_{self.persona}"

    @property
    def label_policy(self) -> str:
        return PERSONAS[self.persona].label_policy

    def __str__(self) -> str:
        return self.canonical


def is_rewrite_spec(text: str) -> bool:
    """True for ``rewrite`` / ``rewrite:...`` specs."""
    text = str(text).strip()
    return text == "rewrite" or text.startswith("rewrite:")


def parse_rewrite_spec(text: str | RewriteSpec) -> RewriteSpec:
    """Parse ``rewrite:persona=NAME[:temperature=T][:max_tokens=N][:judge=SPEC][:model=SPEC]``.

    Raises:
        ConfigError: not a rewrite spec, unknown option or persona, bad number, or a
            model spec that is malformed.
    """
    if isinstance(text, RewriteSpec):
        return text
    raw = str(text).strip()
    if not is_rewrite_spec(raw):
        raise ConfigError(f"{raw!r} is not a rewrite spec (expected rewrite:persona=NAME...)")
    body = raw[len("rewrite"):]
    options: dict[str, str] = {}
    if body:
        # split only before a known key, so model specs keep their own colons
        pieces = re.split(r":(?=(?:" + "|".join(_OPTION_KEYS) + r")=)", body)
        if pieces[0]:
            raise ConfigError(f"rewrite spec {raw!r}: cannot read {pieces[0]!r}; options are "
                              f"{', '.join(_OPTION_KEYS)}")
        for piece in pieces[1:]:
            key, _, value = piece.partition("=")
            if key in options:
                raise ConfigError(f"rewrite spec {raw!r}: option {key!r} given twice")
            options[key] = value.strip()
    persona = options.get("persona", "")
    if persona not in PERSONAS:
        import difflib

        close = difflib.get_close_matches(persona, PERSONAS, n=2)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise ConfigError(f"rewrite spec {raw!r}: unknown persona {persona!r}{hint} "
                          f"(personas: {', '.join(PERSONAS)})")
    try:
        temperature = float(options.get("temperature", 0.0))
        max_tokens = int(options.get("max_tokens", 96))
    except ValueError:
        raise ConfigError(f"rewrite spec {raw!r}: temperature must be a number and "
                          f"max_tokens a whole number") from None
    if not 0.0 <= temperature <= 2.0 or max_tokens < 8:
        raise ConfigError(f"rewrite spec {raw!r}: temperature must lie in [0, 2] and "
                          f"max_tokens be at least 8")
    from robustify.models import split_model_spec

    model = options.get("model") or DEFAULT_REWRITER
    split_model_spec(model)  # fails now, with the accepted forms, rather than mid-run
    judge = options.get("judge") or None
    if judge:
        split_model_spec(judge)
    return RewriteSpec(persona=persona, model=model, judge=judge, temperature=temperature,
                       max_tokens=max_tokens)


def split_rewrite_specs(specs: Iterable[str]) -> tuple[list[str], list[RewriteSpec]]:
    """Separate ``rewrite:...`` specs (parsed) from registry transform specs (kept as text).

    Lets a job's ``transforms`` list mix both: pass the first list to
    :func:`perturbations.parse_spec_list` as before, the second to
    :func:`run_rewrite_specs`.
    """
    regular: list[str] = []
    rewrites: list[RewriteSpec] = []
    for spec in specs:
        if is_rewrite_spec(spec):
            rewrites.append(parse_rewrite_spec(spec))
        else:
            regular.append(spec)
    return regular, rewrites


# ------------------------------------------------------------------------ prompts

def rewrite_messages(item: Item, persona: str) -> list[dict[str, str]]:
    """The chat messages asking for one rewrite of ``item.input`` in ``persona``."""
    description = PERSONAS[persona].description
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": USER_TEMPLATE.format(description=description,
                                                             question=item.input)}]


_LABEL_LINE = re.compile(
    r"^\s*(?:\*\*)?(?:here(?:'s| is)[^:\n]*|rewritten(?: question)?|rewrite|question|"
    r"sure[^:\n]*|output)\s*:\s*(?:\*\*)?\s*", re.IGNORECASE)


def clean_rewrite(text: str | None) -> str:
    """Strip what chat models wrap around an answer: a label ("Rewritten question:"),
    quotes, and anything after the first non-empty line.

    Only this mechanical clean-up is done; everything else is judged by
    :func:`check_rewrite`, never repaired.
    """
    if not text:
        return ""
    lines = [ln.strip() for ln in str(text).strip().splitlines()]
    out = ""
    for line in lines:
        line = _LABEL_LINE.sub("", line).strip()
        if line:
            out = line
            break
    if len(out) >= 2 and out[0] == out[-1] and out[0] in "\"'“”`":
        out = out[1:-1].strip()
    out = out.strip("“”\"`").strip()
    return out


_REFUSAL = re.compile(
    r"\b(i'?m sorry|i am sorry|i apologi[sz]e|as an ai\b|as a language model|i cannot|i can't "
    r"(?:help|assist|do|provide|rewrite)|i can not|i'?m (?:not able|unable)|i am (?:not able|"
    r"unable)|i'?m not available|i won'?t be able|unable to (?:help|assist|provide|rewrite))",
    re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_DIGIT_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
    "thirteen": "13", "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17",
    "eighteen": "18", "nineteen": "19", "twenty": "20", "thirty": "30", "forty": "40",
    "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80", "ninety": "90",
    "hundred": "100", "thousand": "1000", "dozen": "12", "first": "1", "second": "2",
    "third": "3",
}
_WORD_OF_DIGITS = {v: k for k, v in _DIGIT_WORDS.items() if k not in ("first", "second",
                                                                       "third", "dozen")}
_SENTENCE_START = re.compile(r"(?:^|[.!?]\s+)([A-Z][a-z]*)")


def _contains(haystack: str, needle: str) -> bool:
    needle = needle.strip().lower()
    if not needle:
        return True
    return re.search(r"(?<!\w)" + re.escape(needle) + r"(?!\w)", haystack.lower()) is not None


def _numbers(text: str) -> set[str]:
    found = {m.group().replace(",", "") for m in _NUMBER.finditer(text)}
    for word in re.findall(r"[A-Za-z]+", text.lower()):
        if word in _DIGIT_WORDS and word not in ("first", "second", "third", "one"):
            found.add(_DIGIT_WORDS[word])
    return found


def _span_survives(span: str, rewrite: str) -> bool:
    if _contains(rewrite, span):
        return True
    key = span.lower().strip()
    # a number may change form: "three" -> "3", "12" -> "twelve", "$4.50" -> "4.50"
    if key in _DIGIT_WORDS and _contains(rewrite, _DIGIT_WORDS[key]):
        return True
    digits = re.sub(r"[^\d.]", "", key)
    if digits and (_contains(rewrite, digits) or
                   (digits in _WORD_OF_DIGITS and _contains(rewrite, _WORD_OF_DIGITS[digits]))):
        return True
    return False


def _names(text: str) -> list[str]:
    """Capitalised words inside a sentence (the first word of a sentence is skipped)."""
    starts = {m.start(1) for m in _SENTENCE_START.finditer(text)}
    names = []
    for m in re.finditer(r"\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)*", text):
        start, word = m.start(), m.group()
        if start in starts:
            # "Tom has ..." starts a sentence; keep the rest of a multi-word name
            parts = word.split()
            if len(parts) == 1:
                continue
            word = " ".join(parts[1:])
        if word not in ("I",) and word not in names:
            names.append(word)
    return names


def _answer_phrases(item: Item) -> list[str]:
    """Texts that would give the answer away if a rewrite newly contained them."""
    phrases: list[str] = []
    if item.task == "multiple_choice" and item.choices:
        letters = [choice_letter(i) for i in range(len(item.choices))]
        if item.target in letters:
            phrases.append(item.choices[letters.index(item.target)])
    elif item.task == "classification":
        phrases += [item.target, item.target.replace("_", " ")]
    elif item.task == "yes_no":
        pass  # "yes"/"no" are everyday words; their presence gives nothing away
    else:
        phrases.append(item.target)
        aliases = item.metadata.get("aliases")
        if isinstance(aliases, (list, tuple)):
            phrases += [str(a) for a in aliases]
    return [p for p in dict.fromkeys(phrases) if len(p.strip()) >= 2]


_SEVERITY = ("empty", "refusal", "answer_leaked", "new_number", "lost_span", "unchanged",
             "too_long")


def check_rewrite(item: Item, rewrite: str, *, keep_spans: bool = True,
                  raw: str | None = None) -> list[str]:
    """Every reason to reject ``rewrite`` of ``item`` (empty list: accepted).

    Reasons start with a code, followed by the detail, gravest first: ``empty``,
    ``refusal``, ``answer_leaked``, ``new_number``, ``lost_span``, ``unchanged``,
    ``too_long``.

    Args:
        item: The original item.
        rewrite: The cleaned rewrite (:func:`clean_rewrite`).
        keep_spans: Check protected spans and names (off for personas that may drop them).
        raw: The model's raw answer, searched for refusals too.
    """
    reasons: list[str] = []
    text = rewrite.strip()
    if len(text) < 3 or not re.search(r"[^\W\d_]", text):
        return ["empty: the rewriter returned no usable text"]
    if _REFUSAL.search(text) or (raw is not None and _REFUSAL.search(raw[:200])):
        reasons.append("refusal: the rewriter apologised or refused instead of rewriting")
    original = item.input
    if " ".join(text.lower().split()) == " ".join(original.lower().split()):
        reasons.append("unchanged: the rewrite is the question as it was")
    if len(text.split()) > 3 * len(original.split()) + 15:
        reasons.append(f"too_long: {len(text.split())} words for a {len(original.split())}-word "
                       f"question (the rewriter probably answered or rambled)")
    if keep_spans:
        declared = item.metadata.get("protect") or ()
        if isinstance(declared, str):
            declared = (declared,)
        spans = [original[s:e] for s, e in protected_spans(original, [str(p) for p in declared])]
        lost = [s for s in dict.fromkeys(spans) if not _span_survives(s, text)]
        lost += [n for n in _names(original) if not _contains(text, n) and n not in lost]
        if lost:
            reasons.append("lost_span: " + ", ".join(repr(s) for s in lost) + " missing")
    new_numbers = sorted(_numbers(text) - _numbers(original))
    answer = _answer_phrases(item)
    leaked = [p for p in answer if _contains(text, p) and not _contains(original, p)]
    if item.task == "numeric" and item.target.replace(",", "") in new_numbers:
        leaked.append(item.target)
    if leaked:
        reasons.append("answer_leaked: " + ", ".join(repr(p) for p in dict.fromkeys(leaked))
                       + " newly present")
    if new_numbers and not leaked:
        reasons.append("new_number: " + ", ".join(new_numbers) + " not in the question")
    elif new_numbers:
        others = [n for n in new_numbers if n != item.target.replace(",", "")]
        if others:
            reasons.append("new_number: " + ", ".join(others) + " not in the question")
    # the gravest reason first: it becomes the row's ``reason``
    return sorted(reasons, key=lambda r: _SEVERITY.index(r.split(":", 1)[0]))


# ------------------------------------------------------------------------ running

def _derived_seed(seed: int, replicate: int) -> int:
    # replicate 0 uses the run seed itself, so a rewrite is the same call in every run
    return int(seed) + int(replicate)


def _build(spec_text: str, params: GenerationParams) -> Any:
    from robustify.models import parse_model_spec

    return parse_model_spec(spec_text, params=params)


def _ask(items: Sequence[Item], backend: Any, messages_of: Any, cache: Any,
         progress: bool) -> pd.DataFrame:
    from robustify.runner.execute import run_queries

    variants = [Variant.clean(item, version=__version__) for item in items]
    return run_queries(variants, [backend], build_messages=messages_of,
                       score=lambda _item, _text: Score(0.0), cache=cache, progress=progress)


def _effective(rs: RewriteSpec, backend: Any, judge: Any) -> RewriteSpec:
    """The spec naming the models really used (a passed backend overrides the spec's)."""
    if isinstance(backend, str):
        rs = dataclasses.replace(rs, model=backend)
    elif backend is not None:
        rs = dataclasses.replace(rs, model=str(getattr(backend, "label", rs.model)))
    if isinstance(judge, str):
        rs = dataclasses.replace(rs, judge=judge)
    elif judge is not None:
        rs = dataclasses.replace(rs, judge=str(getattr(judge, "label", "judge")))
    return rs


def _judge_verdict(text: str | None) -> bool | None:
    if not text:
        return None
    m = re.match(r"\W*(yes|no)\b", text.strip(), re.IGNORECASE)
    if m:
        return m.group(1).lower() == "yes"
    yes = re.search(r"\byes\b", text, re.IGNORECASE)
    no = re.search(r"\bno\b", text, re.IGNORECASE)
    if bool(yes) != bool(no):
        return bool(yes)
    return None


def rewrite_variants(items: Sequence[Item], spec: str | RewriteSpec, backend: Any = None,
                     cache: Any = None, seed: int = 0, *, replicate: int = 0,
                     judge: Any = None, progress: bool = False
                     ) -> tuple[list[Variant], pd.DataFrame]:
    """Ask a model to rewrite every item's question, check each rewrite, keep the good ones.

    Args:
        items: The clean items.
        spec: A ``rewrite:...`` spec string or :class:`RewriteSpec`.
        backend: The rewriter: ``None`` (the spec's ``model``), a model spec string, or
            a ready backend (used as given and not closed; its own params apply). A
            backend built here gets ``GenerationParams(temperature=spec.temperature,
            seed=seed + replicate, max_tokens=spec.max_tokens)``.
        cache: A :class:`~robustify.runner.cache.ResponseCache` (or ``None``): rewrites are
            cached by rewriter identity (with its params, hence the seed) and messages.
        seed: Run seed; recorded on the variants and passed to the rewriter.
        replicate: Replicate index; with temperature 0 every replicate gives the same
            text, so ask replicate 0 only.
        judge: Optional judge (spec string or backend; default the spec's ``judge``):
            a rewrite is kept only when the judge answers Yes to "same question?".
        progress: Show a progress bar.

    Returns:
        ``(variants, rejected)``: one :class:`~perturbations.Variant` per accepted
        rewrite (``spec`` = the canonical spec naming the rewriter really used, a
        passed backend by its label; ``transform`` = ``rewrite_<persona>``; severity 1;
        the persona's label policy; only the question is rewritten, options and context
        are kept), and a DataFrame with one row per rejected item
        (:data:`REJECTION_COLUMNS`; ``reason`` is the gravest reason, ``reasons`` all).
        ``rejected.attrs["rewriter_identity"]`` holds the rewriter's cache identity.
    """
    rs = _effective(parse_rewrite_spec(spec), backend, judge)
    persona = PERSONAS[rs.persona]
    params = GenerationParams(temperature=rs.temperature, seed=_derived_seed(seed, replicate),
                              max_tokens=rs.max_tokens)
    owned: list[Any] = []
    if backend is None or isinstance(backend, str):
        backend = _build(backend or rs.model, params)
        owned.append(backend)
    judge = judge if judge is not None else rs.judge
    if isinstance(judge, str):  # built here from its spec string
        judge = _build(judge, GenerationParams(temperature=0.0, seed=int(seed), max_tokens=8))
        owned.append(judge)
    label = getattr(backend, "label", str(backend))
    identity = _identity(backend)
    items = list(items)
    try:
        asked = _ask(items, backend, lambda item: rewrite_messages(item, rs.persona), cache,
                     progress)
        by_id = {item.id: item for item in items}
        accepted: list[tuple[Item, str]] = []
        rejected: list[dict[str, Any]] = []

        def reject(item: Item, reasons: list[str], cleaned: str, raw: Any) -> None:
            rejected.append({"item_id": item.id, "spec": rs.canonical, "persona": rs.persona,
                             "rewriter": label, "replicate": replicate,
                             "reason": reasons[0].split(":", 1)[0], "reasons": "; ".join(reasons),
                             "rewrite": cleaned, "raw": raw, "original": item.input})

        for row in asked.to_dict("records"):
            item = by_id[row["item_id"]]
            raw = row.get("response")
            if row.get("error") is not None or raw is None:
                reject(item, [f"call_failed: {row.get('error')}"], "", None)
                continue
            cleaned = clean_rewrite(raw)
            reasons = check_rewrite(item, cleaned, keep_spans=persona.keep_spans, raw=raw)
            if reasons:
                reject(item, reasons, cleaned, raw)
            else:
                accepted.append((item, cleaned))
        if judge is not None and accepted:
            candidates = [dataclasses.replace(item, input=text) for item, text in accepted]
            originals = {item.id: item.input for item, _ in accepted}
            verdicts = _ask(candidates, judge, lambda cand: [
                {"role": "system", "content": JUDGE_SYSTEM},
                {"role": "user", "content": JUDGE_TEMPLATE.format(
                    original=originals[cand.id], rewrite=cand.input)}], cache, progress)
            verdict_of = {r["item_id"]: (r.get("response"), r.get("error"))
                          for r in verdicts.to_dict("records")}
            kept = []
            for item, text in accepted:
                answer, error = verdict_of[item.id]
                verdict = None if error else _judge_verdict(answer)
                if verdict is True:
                    kept.append((item, text))
                elif verdict is False:
                    reject(item, ["judge: the judge model says the meaning changed"], text, answer)
                else:
                    reject(item, [f"judge: no clear verdict ({error or (answer or '')[:60]!r})"],
                           text, answer)
            accepted = kept
    finally:
        for b in owned:
            b.close()
    variants = [Variant(item=dataclasses.replace(item, input=text), spec=rs.canonical,
                        transform=rs.transform, severity=1.0, seed=int(seed),
                        replicate=int(replicate), changed=True,
                        edit_rate=round(edit_rate(item.input, text), 6),
                        label_policy=rs.label_policy, version=__version__)
                for item, text in accepted]
    order = {item.id: i for i, item in enumerate(items)}
    frame = pd.DataFrame(sorted(rejected, key=lambda r: order[r["item_id"]]),
                         columns=list(REJECTION_COLUMNS))
    # the manifest records who really rewrote, also when the backend was built here
    frame.attrs["rewriter_identity"] = identity
    log.info("%s: %d rewrites kept, %d rejected", rs.canonical, len(variants), len(frame))
    return variants, frame


def _identity(backend: Any) -> dict[str, Any] | None:
    try:
        identity = dict(backend.identity())
    except Exception:  # a foreign backend without identity(): record the label only
        return None
    identity.pop("api_key", None)  # defensive: identities never carry keys
    return identity


def rewrite_manifest(spec: str | RewriteSpec, backend: Any = None, *, n_items: int,
                     variants: Sequence[Variant] = (), rejected: pd.DataFrame | None = None,
                     seed: int = 0) -> dict[str, Any]:
    """The manifest entry of one rewrite spec: who rewrote, with which prompt, how it went.

    Args:
        spec: The rewrite spec.
        backend: The rewriter backend, if one was passed (its identity is recorded);
            otherwise the identity :func:`rewrite_variants` left on ``rejected.attrs``
            and the spec's model string are.
        n_items: Items asked.
        variants, rejected: What :func:`rewrite_variants` returned.
        seed: Run seed.
    """
    rs = _effective(parse_rewrite_spec(spec), backend, None)
    rejected = rejected if rejected is not None else pd.DataFrame(columns=list(REJECTION_COLUMNS))
    identity = rejected.attrs.get("rewriter_identity")
    if backend is not None and not isinstance(backend, str):
        identity = _identity(backend)
    return {
        "spec": rs.canonical, "transform": rs.transform, "persona": rs.persona,
        "label_policy": rs.label_policy, "rewriter": rs.model,
        "rewriter_identity": identity, "judge": rs.judge,
        "params": {"temperature": rs.temperature, "seed": int(seed), "max_tokens": rs.max_tokens},
        "prompt": {"system": SYSTEM_PROMPT, "user": USER_TEMPLATE.format(
            description=PERSONAS[rs.persona].description, question="{question}")},
        "n_items": int(n_items), "n_accepted": len(variants), "n_rejected": int(len(rejected)),
        "rejected_by_reason": {str(k): int(v) for k, v in
                               rejected["reason"].value_counts().items()} if len(rejected) else {},
    }


@dataclass
class RewriteOutcome:
    """Everything :func:`run_rewrite_specs` produced for a run."""

    variants: list[Variant] = field(default_factory=list)
    """Accepted rewrites of every spec (and replicate), in spec then item order."""
    rejected: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=list(REJECTION_COLUMNS)))
    """Rejected rewrites with reasons."""
    manifest: list[dict[str, Any]] = field(default_factory=list)
    """One :func:`rewrite_manifest` entry per spec."""

    def write(self, out_dir: str | os.PathLike[str]) -> Path:
        """Write ``rewrite_rejections.csv`` atomically into ``out_dir``."""
        from robustify.atomic import write_text_atomic

        return write_text_atomic(Path(out_dir) / "rewrite_rejections.csv",
                                 self.rejected.to_csv(index=False))


def run_rewrite_specs(items: Sequence[Item], specs: Sequence[str | RewriteSpec], *,
                      seed: int = 0, cache: Any = None, replicates: int = 1,
                      progress: bool = False,
                      backends: Mapping[str, Any] | None = None) -> RewriteOutcome:
    """Run every rewrite spec of a job: the one call ``run_job`` needs.

    Args:
        items: The job's items.
        specs: Rewrite specs (see :func:`split_rewrite_specs`).
        seed: The job seed.
        cache: The job's response cache.
        replicates: The job's replicates; with temperature 0 only replicate 0 is asked
            (the others would repeat it word for word).
        progress: Show progress bars.
        backends: Optional ready backends by model spec string (e.g. reuse a loaded
            model); others are built from the spec and closed afterwards.

    Returns:
        A :class:`RewriteOutcome`.
    """
    outcome = RewriteOutcome()
    frames = []
    for spec in specs:
        rs = parse_rewrite_spec(spec)
        reps = range(replicates if rs.temperature > 0 else 1)
        kept: list[Variant] = []
        rejected_parts = []
        backend = (backends or {}).get(rs.model)
        for rep in reps:
            variants, rejected = rewrite_variants(items, rs, backend, cache, seed, replicate=rep,
                                                  progress=progress)
            kept += variants
            rejected_parts.append(rejected)
        rejected_all = pd.concat(rejected_parts, ignore_index=True) if rejected_parts else None
        if rejected_all is not None:
            rejected_all.attrs["rewriter_identity"] = rejected_parts[0].attrs.get(
                "rewriter_identity")
        outcome.variants += kept
        if rejected_all is not None:
            frames.append(rejected_all)
        outcome.manifest.append(rewrite_manifest(rs, backend, n_items=len(items) * len(reps),
                                                 variants=kept, rejected=rejected_all, seed=seed))
    if frames:
        outcome.rejected = pd.concat(frames, ignore_index=True)
    return outcome
