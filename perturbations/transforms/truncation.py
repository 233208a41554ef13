"""Truncation: the message was sent too early, or the user left the end off."""

from __future__ import annotations

import dataclasses
import random
import re
from typing import Sequence

from ..base import Option, TextTransform
from ..records import Item
from ..registry import register
from ..text import count_for, tokenize

__all__ = ["Truncation", "clause_starts", "split_sentences"]

# Words that open a trailing clause; a cut goes right before them.
_CLAUSE_WORDS = frozenset("""
and but or nor so yet which that who whom whose where when while because since although
though unless until whereas if after before as
""".split())
_CLAUSE_PUNCT = re.compile(r"[,;:—–(]|\s-\s")
# a sentence ends at . ! ? … (plus closing quotes) followed by space and a capital or
# digit, so "9 a.m. on weekdays" and "3.5" stay whole
_SENTENCE_BREAK = re.compile(r"[.!?…]+[\"'”’)\]]*\s+(?=[\"“‘'(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences, each with its trailing space; ``"".join`` gives it back."""
    parts: list[str] = []
    pos = 0
    for m in _SENTENCE_BREAK.finditer(text):
        parts.append(text[pos:m.end()])
        pos = m.end()
    if pos < len(text):
        parts.append(text[pos:])
    return parts or [text]


def _word_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    pos = 0
    for tok in tokenize(text):
        if tok.is_word:
            spans.append((pos, pos + len(tok.text)))
        pos += len(tok.text)
    return spans


def _min_keep(n_words: int) -> int:
    # keep the first word of short texts and the first two of longer ones
    return 1 if n_words <= 3 else 2


def clause_starts(text: str) -> list[int]:
    """Character offsets where a trailing clause may be cut off, in increasing order.

    A clause starts at ``, ; : — (`` and before a conjunction or relative word
    (and, but, which, that, because ...) that is not the first word. Sentence ends
    count too, so a second sentence can be dropped whole.
    """
    spans = _word_spans(text)
    if not spans:
        return []
    first_end = spans[0][1]
    cuts: set[int] = set()
    for m in _CLAUSE_PUNCT.finditer(text):
        if m.start() >= first_end:
            cuts.add(m.start())
    for (p_start, p_end), (start, end) in zip(spans, spans[1:]):
        # "so that", "but when": the clause starts at the first of the two
        if text[start:end].lower() in _CLAUSE_WORDS and \
                text[p_start:p_end].lower() not in _CLAUSE_WORDS:
            cuts.add(start)
    offset = 0
    for sentence in split_sentences(text)[:-1]:
        offset += len(sentence)
        cuts.add(offset)
    last_word_end = spans[-1][1]
    # a cut must leave at least one word before it and drop at least one word after it;
    # ", and" is one boundary, not two
    out: list[int] = []
    for c in sorted(c for c in cuts if first_end <= c < last_word_end):
        if out and not re.search(r"\w", text[out[-1]:c]):
            continue
        out.append(c)
    return out


@register("truncation", family="truncation", label_policy="may_break")
class Truncation(TextTransform):
    """Cut the text short, as a message sent too early or a question left unfinished.

    ``tail`` cuts the last words off at a word boundary ("What is the capital of");
    ``midword`` cuts inside a word, like a message sent mid-typing ("What is the capital
    of Fra"); ``clause`` drops trailing clauses and sentences ("..., which is not
    Sydney" goes first) and keeps a final "?" so the rest still reads as a whole
    question; ``context`` drops sentences from the item's context passage (no-op for
    items without context). The first word (two words for texts over three words) is
    always kept.

    Severity: ``tail``/``midword``: share of the words cut off (0.5 -> the second half
    is gone). ``clause``: share of the trailing clauses dropped (texts with a single
    clause fall back to ``tail``). ``context``: share of the context sentences dropped,
    chosen at random, at least one kept (a one-sentence context is cut like ``tail``).
    Label: may_break. Numbers, names and constraints in the lost part are gone, so the
    gold answer may no longer be derivable; that is the point.
    Options: ``mode`` = tail | midword | clause | context (default tail).
    """

    OPTIONS = {"mode": Option("tail", ("tail", "midword", "clause", "context"),
                              "where the text is cut")}

    def apply(self, item: Item, severity: float, rng: random.Random) -> Item:
        if self.options["mode"] != "context":
            return super().apply(item, severity, rng)
        if severity <= 0 or not item.context or not item.context.strip():
            return item
        context = self._drop_sentences(item.context, severity, rng)
        if not context.strip() or context == item.context:
            return item
        return dataclasses.replace(item, context=context)

    def perturb_text(self, text: str, severity: float, rng: random.Random,
                     protected: Sequence[tuple[int, int]]) -> str:
        mode = self.options["mode"]
        if mode == "clause":
            return self._drop_clauses(text, severity, rng)
        return self._cut_words(text, severity, rng, midword=mode == "midword")

    @staticmethod
    def _cut_words(text: str, severity: float, rng: random.Random, *, midword: bool) -> str:
        spans = _word_spans(text)
        n = len(spans)
        cut = min(count_for(n, severity, rng), n - _min_keep(n))
        if cut <= 0:
            return text
        first_cut = n - cut
        if midword:
            start, end = spans[first_cut]
            if end - start >= 2:
                return text[:start + rng.randint(1, end - start - 1)]
        return text[:spans[first_cut - 1][1]]

    def _drop_clauses(self, text: str, severity: float, rng: random.Random) -> str:
        cuts = clause_starts(text)
        if not cuts:
            return self._cut_words(text, severity, rng, midword=False)
        dropped = count_for(len(cuts), severity, rng)
        if dropped == 0:
            return text
        cut = cuts[len(cuts) - dropped]
        out = re.sub(r"[\s,;:—–(-]+$", "", text[:cut])
        final = re.search(r"[.!?…]+$", text.rstrip())
        last_sentence = len(text) - len(split_sentences(text)[-1])
        # Cut inside the final sentence: it still ends the way it did ("...Australia?"),
        # so it reads as a complete question that lacks a constraint.
        if final and cut > last_sentence and not re.search(r"[.!?…]$", out):
            out += final.group()
        return out

    def _drop_sentences(self, text: str, severity: float, rng: random.Random) -> str:
        sentences = split_sentences(text)
        if len(sentences) < 2:
            return self._cut_words(text, severity, rng, midword=False)
        drop = min(count_for(len(sentences), severity, rng), len(sentences) - 1)
        gone = set(rng.sample(range(len(sentences)), drop))
        kept = [s for i, s in enumerate(sentences) if i not in gone]
        # the last sentence carries no trailing space; give it one if it is no longer last
        out = "".join(s if s[-1:].isspace() or i == len(kept) - 1 else s + " "
                      for i, s in enumerate(kept))
        return out if text[-1:].isspace() else out.rstrip()
