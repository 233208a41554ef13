"""Synonyms: the user words the question differently ("purchase" for "buy").

Replacements come from WordNet through NLTK (see :mod:`perturbations.wordnet` for where
the corpus is found). There is no part-of-speech tagger offline, so words are picked
conservatively: only a word whose WordNet senses are dominated by one part of speech
and by one sense is replaced, by a frequent single-word lemma of that sense.
"""

from __future__ import annotations

import random
import threading
import weakref
from typing import Any, Sequence

from .. import wordnet
from ..base import TextTransform
from ..registry import register
from ..text import NUMBER_WORDS, count_for, detokenize, match_case, tokenize

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
thanks thank sorry put rid job mix son
""".split())

_POS = {"n": "n", "v": "v", "a": "a", "s": "a", "r": "r"}
MIN_LENGTH = 3
"""Shorter words are skipped: their senses are too many and too varied."""
POS_SHARE = 0.8
"""A word is replaced only if this share of its (smoothed) sense counts has one POS."""
SENSE_SHARE = 0.45
"""... and its most frequent sense holds this share of that POS."""
MIN_SYNONYM_COUNT = 2
"""A synonym must occur at least this often in WordNet's tagged corpus (no "cognize")."""


class SynonymFinder:
    """Picks the replacement for one word from a WordNet reader, with a cache."""

    def __init__(self, wn: Any) -> None:
        self.wn = wn
        self._cache: dict[str, str | None] = {}
        self._lock = threading.Lock()  # the reader shares open file handles

    def __call__(self, word: str) -> str | None:
        """The synonym for lower-case ``word``, or None when it is not a safe pick."""
        with self._lock:
            if word not in self._cache:
                self._cache[word] = self._find(word)
            return self._cache[word]

    def _inflected(self, word: str) -> bool:
        # "eats", "charged", "longest": WordNet lists some inflected forms as lemmas of
        # another POS; replacing them would pick the wrong word class.
        for pos in "nvar":
            base = self.wn.morphy(word, pos)
            if base is not None and base != word:
                return True
        return False

    def _find(self, word: str) -> str | None:
        if len(word) < MIN_LENGTH or not word.isalpha() or word in STOP_WORDS \
                or word in NUMBER_WORDS or self._inflected(word):
            return None
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
        if not totals:
            return None
        pos = max(sorted(totals), key=totals.__getitem__)
        if totals[pos] < POS_SHARE * sum(totals.values()):
            return None
        count, _, synset = max(senses[pos], key=lambda s: (s[0], s[1]))
        if count < SENSE_SHARE * totals[pos]:
            return None
        options = []
        for order, lemma in enumerate(synset.lemmas()):
            name = lemma.name()
            if name.lower() == word or not name.isalpha() or not name.islower() \
                    or name in STOP_WORDS or name in NUMBER_WORDS:
                continue
            if lemma.count() >= MIN_SYNONYM_COUNT:
                options.append((lemma.count(), -order, name))
        if not options:
            return None
        return max(options)[2]


_finders: "weakref.WeakKeyDictionary[Any, SynonymFinder]" = weakref.WeakKeyDictionary()
_finders_lock = threading.Lock()


def _finder() -> SynonymFinder:
    wn = wordnet.load_wordnet()  # raises MissingDependencyError with the install hint
    with _finders_lock:
        finder = _finders.get(wn)
        if finder is None:
            finder = _finders[wn] = SynonymFinder(wn)
        return finder


@register("synonyms", family="synonyms", label_policy="preserves")
class Synonyms(TextTransform):
    """Replace words with WordNet synonyms ("buy" -> "purchase", "car" -> "automobile").

    Only safe words are candidates: at least three letters, not a stop word, number word
    or protected span, written in lower case (capitalised words inside a sentence are
    names) and not an inflected form. Without a part-of-speech tagger, a word qualifies
    only when at least 80% of its WordNet sense frequency is one part of speech and its
    most frequent sense dominates; the replacement is the most frequent other
    single-word lemma of that sense. The original case pattern is kept.

    Severity: share of the eligible words replaced (0.5 -> about half of them; 1 -> all).
    Texts without eligible words are returned unchanged.
    Label: preserves. Same sense, same part of speech; numbers, option letters and
    protected phrases are never touched.
    Options: none besides ``fields``. Needs WordNet: ``apt-get install wordnet-base`` (the
    NLTK corpus is then built on first use) or ``python -m nltk.downloader wordnet``;
    without it applying this transform raises ``MissingDependencyError``.
    """

    def perturb_text(self, text: str, severity: float, rng: random.Random,
                     protected: Sequence[tuple[int, int]]) -> str:
        finder = _finder()
        tokens = tokenize(text, protected)
        candidates = []
        sentence_initial = True
        for tok in tokens:
            if not tok.is_word:
                if tok.text.rstrip().endswith((".", "!", "?")):
                    sentence_initial = True
                continue
            initial, sentence_initial = sentence_initial, False
            word = tok.text
            # capitalised inside a sentence: a name ("Red Planet"), never a synonym
            if not tok.editable or not (
                    word.islower() or (initial and word[:1].isupper() and word[1:].islower())):
                continue
            synonym = finder(word.lower())
            if synonym is not None:
                candidates.append((tok, synonym))
        for tok, synonym in rng.sample(candidates, count_for(len(candidates), severity, rng)):
            tok.text = match_case(tok.text, synonym)
        return detokenize(tokens)
