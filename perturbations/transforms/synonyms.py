"""Synonyms: the user words the question differently ("purchase" for "buy").

Replacements come from WordNet through NLTK (see :mod:`perturbations.wordnet` for where
the corpus is found). There is no part-of-speech tagger offline, so words are picked
conservatively: only a word whose WordNet senses are dominated by one part of speech
and by one sense is replaced, by a frequent single-word lemma of that sense.
"""

from __future__ import annotations

import random
import re
import threading
import weakref
from typing import Any, Sequence

from .. import wordnet
from ..base import TextTransform
from ..keywords import DECISIVE_WORDS, QUANTITY_WORDS, VAGUE_QUANTIFIERS, is_caps_word
from ..quantities import NUMBER_VOCABULARY
from ..registry import register
from ..text import NUMBER_WORDS, Token, count_for, detokenize, match_case, tokenize

__all__ = ["Synonyms", "SynonymFinder"]

# Function words, very common verbs whose WordNet senses say nothing about how they are
# used in a question ("like" is a verb in WordNet, "please" too), and short words whose
# most frequent sense is the wrong one in everyday questions ("job" -> "business").
STOP_WORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing done down during each either
else even ever every few for from further get gets getting go goes going gone got had has
have having he her here hers herself him himself his how however i if in into is it its
itself just let like likes make makes made many may me might mine more most much must my
myself neither no nor not now of off on once one only or other ought our ours ourselves
out over own please per same say says said see she should since so some still such take
takes than that the their theirs them themselves then there these they this those though
through thus to too under until up upon us very was way we well were what whatever when
where whether which while who whom whose why will with within without would yes yet you
your yours yourself yourselves tell told thing things really quite okay ok hi hello hey
thanks thank sorry put rid job mix son someone somebody anyone anybody everyone everybody
nobody person people thing something anything everything nothing
""".split())

_NEVER = STOP_WORDS | NUMBER_WORDS | NUMBER_VOCABULARY | QUANTITY_WORDS | VAGUE_QUANTIFIERS \
    | DECISIVE_WORDS
"""Never replaced and never produced: function words, numbers, quantities, decisive words."""

_POS = {"n": "n", "v": "v", "a": "a", "s": "a", "r": "r"}
MIN_LENGTH = 3
"""Shorter words are skipped: their senses are too many and too varied."""
POS_SHARE = 0.8
"""A word is replaced only if this share of its (smoothed) sense counts has one POS."""
SENSE_SHARE = 0.65
"""... and its most frequent sense holds this share of that POS."""
MIN_SENSE_COUNT = 4
"""... and that sense is attested this often for the word ("sunny" has 2: too little
evidence to know it means "cheery")."""
MIN_SYNONYM_COUNT = 2
"""A synonym must occur at least this often in WordNet's tagged corpus (no "cognize")."""


class SynonymFinder:
    """Picks the replacement for one word from a WordNet reader, with a cache."""

    def __init__(self, wn: Any) -> None:
        self.wn = wn
        self._cache: dict[str, tuple[str | None, str | None]] = {}
        self._lock = threading.Lock()  # the reader shares open file handles

    def __call__(self, word: str) -> str | None:
        """The synonym for lower-case ``word``, or None when it is not a safe pick."""
        return self.lookup(word)[0]

    def pos(self, word: str) -> str | None:
        """The dominant part of speech of lower-case ``word`` (n, v, a, r) or None."""
        return self.lookup(word)[1]

    def lookup(self, word: str) -> tuple[str | None, str | None]:
        """(synonym or None, dominant part of speech or None) of lower-case ``word``."""
        with self._lock:
            if word not in self._cache:
                self._cache[word] = self._find(word)
            return self._cache[word]

    def collocation(self, first: str, second: str) -> bool:
        """True when "first second" is a WordNet entry of its own ("credit card")."""
        with self._lock:
            return bool(self.wn.synsets(f"{first}_{second}".lower()))

    def _inflected(self, word: str) -> bool:
        # "eats", "charged", "longest", "found" (= find + -ed): WordNet lists some
        # inflected forms as lemmas too ("found" a company); replacing them would pick
        # the wrong word class or tense. Every analysis is checked, not the first only.
        analyses = getattr(self.wn, "_morphy", None)  # NLTK's every-analysis morphy
        for pos in "nvar":
            bases = analyses(word, pos) if analyses else [self.wn.morphy(word, pos)]
            if any(base is not None and base != word for base in bases):
                return True
        return False

    def _senses(self, word: str) -> tuple[dict[str, int], dict[str, list[tuple[int, int, Any]]]]:
        """Smoothed sense counts of ``word`` per part of speech, and its senses."""
        totals: dict[str, int] = {}
        senses: dict[str, list[tuple[int, int, Any]]] = {}
        for order, synset in enumerate(self.wn.synsets(word)):
            own = [lemma for lemma in synset.lemmas() if lemma.name().lower() == word]
            if not own:
                continue
            pos = _POS[synset.pos()]
            count = own[0].count() + 1  # +1: unseen senses still count a little
            totals[pos] = totals.get(pos, 0) + count
            senses.setdefault(pos, []).append((count, -order, synset))
        return totals, senses

    def _find(self, word: str) -> tuple[str | None, str | None]:
        if len(word) < MIN_LENGTH or not word.isalpha():
            return None, None
        totals, senses = self._senses(word)
        if not totals:
            return None, None
        pos = max(sorted(totals), key=totals.__getitem__)
        if word in _NEVER or self._inflected(word) or \
                totals[pos] < POS_SHARE * sum(totals.values()):
            return None, pos
        count, _, synset = max(senses[pos], key=lambda s: (s[0], s[1]))
        if count < SENSE_SHARE * totals[pos] or count - 1 < MIN_SENSE_COUNT:
            return None, pos
        options = []
        for order, lemma in enumerate(synset.lemmas()):
            name = lemma.name()
            if name.lower() == word or not name.isalpha() or not name.islower() \
                    or name in _NEVER or lemma.count() < MIN_SYNONYM_COUNT:
                continue
            share = self._sense_share(name, pos, synset)
            if share is not None:
                options.append((share * lemma.count(), -order, name))
        if not options:
            return None, pos
        return max(options)[2], pos

    def _sense_share(self, name: str, pos: str, synset: Any) -> float | None:
        """How much of ``name``'s use as ``pos`` means ``synset``; None when a reader
        would take it otherwise: "area" -> "country" fails ("country" mostly means a
        nation), "fly" -> "wing" fails ("wing" is mostly a noun)."""
        totals, senses = self._senses(name)
        if pos not in totals or max(totals.values()) > totals[pos]:
            return None
        share = sum(c for c, _, s in senses[pos] if s == synset) / totals[pos]
        top = max(senses[pos], key=lambda s: (s[0], s[1]))[2]
        return share if top == synset or share >= SENSE_SHARE else None


_finders: "weakref.WeakKeyDictionary[Any, SynonymFinder]" = weakref.WeakKeyDictionary()
_finders_lock = threading.Lock()


def _finder() -> SynonymFinder:
    wn = wordnet.load_wordnet()  # raises MissingDependencyError with the install hint
    with _finders_lock:
        finder = _finders.get(wn)
        if finder is None:
            finder = _finders[wn] = SynonymFinder(wn)
        return finder


# the term a question asks about: "what do we mean by X", "define X", "what does X mean",
# "what is a X?", "the word X"; X is kept, or the question asks about another word
_ASKED = (
    re.compile(r"\b(?:mean[st]?\s+by|meaning\s+of|definition\s+of|define|defined\s+as|"
               r"the\s+(?:word|term|phrase|expression|concept|notion)|stands?\s+for|"
               r"(?:is|are|was|were)\s+called|synonym\s+(?:of|for))\s+"
               r"(?P<term>[^\W\d_]+(?:[ -][^\W\d_]+){0,2})", re.IGNORECASE),
    re.compile(r"\bwhat\s+(?:does|do|did)\s+(?P<term>[^?.!,;]{1,40}?)\s+mean\b", re.IGNORECASE),
    re.compile(r"\b(?:what|who)\s+(?:is|are|was|were)\s+(?:an?\s+|the\s+)?"
               r"(?P<term>[^\W\d_]+(?:[ -][^\W\d_]+){0,2})\s*\?", re.IGNORECASE),
)


def asked_spans(text: str) -> list[tuple[int, int]]:
    """Spans of the term a definitional question asks about ("hearth" in "what do we
    mean by hearth?")."""
    return sorted(m.span("term") for pattern in _ASKED for m in pattern.finditer(text))


@register("synonyms", family="synonyms", label_policy="preserves")
class Synonyms(TextTransform):
    """Replace words with WordNet synonyms ("buy" -> "purchase", "car" -> "automobile").

    Only safe words are candidates: at least three letters; not a stop word, number,
    quantity word ("dozens", "several"), decisive word or protected span; not an
    inflected form ("found", "eats": the tense and number stay); not a name (capitalised
    inside a sentence; at the start of a sentence only a verb such as "Buy" qualifies,
    so "Mike plays" keeps Mike); not the term a question asks about ("what do we mean by
    hearth?", "define X", quoted terms); not part of a multi-word term (a hyphenated
    compound as in "auto top-up", the words next to an acronym as in "the ROC curve", a
    WordNet collocation such as "credit card", or a noun that modifies the next noun).
    Without a part-of-speech tagger, a word qualifies only when at least 80% of its
    WordNet sense frequency is one part of speech and its most frequent sense holds 65%
    of it (attested at least four times); the replacement is a single-word lemma of
    that sense that is itself read mostly as that part of speech and that sense ("area"
    never becomes "country", "fly" never "wing"), the most frequent and least ambiguous
    one first. The original case pattern is kept.

    Severity: share of the eligible words replaced (0.5 -> about half of them; 1 -> all).
    Texts without eligible words are returned unchanged.
    Label: preserves. Same sense, same part of speech and inflection; numbers, quantity
    and decisive words, names, terms, option letters and protected phrases are never
    touched.
    Options: none besides ``fields``. Needs WordNet: ``apt-get install wordnet-base`` (the
    NLTK corpus is then built on first use) or ``python -m nltk.downloader wordnet``;
    without it applying this transform raises ``MissingDependencyError``.
    """

    NOTHING_TO_CHANGE = "no word with a safe synonym"

    def count_candidates(self, text: str, severity: float,
                         protected: Sequence[tuple[int, int]]) -> int:
        return len(self._candidates(tokenize(text, protected), text))

    def perturb_text(self, text: str, severity: float, rng: random.Random,
                     protected: Sequence[tuple[int, int]]) -> str:
        tokens = tokenize(text, protected)
        candidates = self._candidates(tokens, text)
        for tok, synonym in rng.sample(candidates, count_for(len(candidates), severity, rng)):
            tok.text = match_case(tok.text, synonym)
        return detokenize(tokens)

    @staticmethod
    def _candidates(tokens: list[Token], text: str) -> list[tuple[Token, str]]:
        finder = _finder()
        asked = asked_spans(text)
        words: list[tuple[int, Token, bool]] = []  # (offset, token, sentence-initial)
        offset, initial = 0, True
        for tok in tokens:
            if tok.is_word:
                words.append((offset, tok, initial))
                initial = False
            elif tok.text.rstrip().endswith((".", "!", "?", ":")) or "\n" in tok.text:
                initial = True
            offset += len(tok.text)
        candidates = []
        for k, (start, tok, first) in enumerate(words):
            word = tok.text
            end = start + len(word)
            if not tok.editable or any(s < end and start < e for s, e in asked):
                continue
            if not (word.islower() or (first and word[:1].isupper() and word[1:].islower())):
                continue  # capitalised inside a sentence: a name ("Red Planet")
            synonym, pos = finder.lookup(word.lower())
            if synonym is None or (word[:1].isupper() and pos != "v"):
                continue  # at a sentence start only an imperative ("Buy it") is safe
            if _in_term(text, words, k, finder):
                continue
            candidates.append((tok, synonym))
        return candidates


def _in_term(text: str, words: list[tuple[int, Token, bool]], k: int,
             finder: SynonymFinder) -> bool:
    """Is word ``k`` part of a multi-word term together with a neighbour?"""
    start, tok, _ = words[k]
    end = start + len(tok.text)
    if text[start - 1:start] == "-" or text[end:end + 1] == "-":
        return True  # inside a hyphenated compound
    for n in (k - 1, k + 1):
        if not 0 <= n < len(words):
            continue
        n_start, other, n_first = words[n]
        gap = text[min(end, n_start + len(other.text)):max(start, n_start)]
        if gap.strip():
            continue  # punctuation between: no term
        o = other.text
        if is_caps_word(o) or any(c.isdigit() for c in o) or (o[:1].isupper() and not n_first):
            return True  # "the ROC curve", "auto top-up", "Apple store"
        if gap.strip() == "" and (text[n_start - 1:n_start] == "-"
                                  or text[n_start + len(o):n_start + len(o) + 1] == "-"):
            return True  # next to a hyphenated compound ("auto top-up")
        pair = (tok.text, o) if n > k else (o, tok.text)
        if o.lower() not in STOP_WORDS and finder.collocation(*pair):
            return True  # "credit card", "phone number"
        if n > k and finder.pos(tok.text.lower()) == "n" and finder.pos(o.lower()) == "n":
            return True  # a noun modifying the next noun: "gift card", "water bottle"
    return False
