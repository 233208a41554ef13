"""The ``similarity_embed`` scorer: same meaning by sentence-embedding cosine (optional extra).

Needs ``pip install 'robustify[embed]'``, which brings `WordLlama
<https://github.com/dleemiller/WordLlama>`_ (MIT): static token embeddings (256 dims,
16 MB) shipped inside the wheel with their tokenizer, run with numpy, no torch and no
download. A text's vector is the average of its token vectors, so word choice counts and
word order does not. The answer and ``item.target`` go through the house normalisation and
their cosine is compared with :data:`EMBED_THRESHOLD`; the negation, number and yes/no
vetoes of :mod:`robustify.scoring.similarity` apply here too (an embedding, like a
character ratio, puts "approved" and "not approved" side by side).

Without the extra, :func:`robustify.scoring.get_scorer` raises a one-line
:class:`~perturbations.errors.ConfigError` naming the install command, so a job fails
before any model call (exit 2 from the command line).
"""

from __future__ import annotations

import sys
import threading
from dataclasses import replace
from importlib import util
from pathlib import Path
from typing import Any

from perturbations.errors import ConfigError
from perturbations.records import Item

from robustify.records import Score
from robustify.scoring.registry import register_scorer
from robustify.scoring.similarity import similarity_scorer

__all__ = ["EMBED_THRESHOLD", "EMBED_MODEL", "score_similarity_embed", "embed_similarity",
           "require_embed_extra"]

EMBED_THRESHOLD = 0.75
"""Cosine at or above which two answers count as the same (calibrated on paraphrase pairs:
docs/open-ended.md, "Similarity scorer")."""

EMBED_MODEL = "wordllama l2_supercat 256"
"""The embedding model, as recorded in ``Score.detail["model"]``."""

_INSTALL = "pip install 'robustify[embed]'"
_lock = threading.Lock()
_loaded: list[Any] = []


def require_embed_extra() -> None:
    """Raise one line naming the install command when the ``embed`` extra is missing.

    Raises:
        ConfigError: ``wordllama`` cannot be imported.
    """
    if "wordllama" in sys.modules:
        present = sys.modules["wordllama"] is not None
    else:
        present = util.find_spec("wordllama") is not None
    if not present:
        raise ConfigError(f"scorer 'similarity_embed' needs the optional 'embed' extra "
                          f"(wordllama): {_INSTALL}")


def _model() -> Any:
    """The WordLlama model, loaded once from the files inside its wheel (never downloaded)."""
    with _lock:
        if not _loaded:
            require_embed_extra()
            import wordllama

            # the package's own folder holds weights/ and tokenizers/: point its cache there
            # and forbid downloads, so a missing file fails instead of reaching the network
            folder = Path(wordllama.__file__).parent
            _loaded.append(wordllama.WordLlama.load(cache_dir=folder, disable_download=True))
        return _loaded[0]


def _cosine(a: str, b: str) -> float:
    if not a or not b:
        return float(a == b)
    import numpy as np

    vectors = np.asarray(_model().embed([a, b], norm=True), dtype=np.float64)
    return float(np.clip(vectors[0] @ vectors[1], 0.0, 1.0))


def embed_similarity(a: str, b: str) -> float:
    """Cosine of the two texts' WordLlama embeddings (after normalisation), clipped to 0..1."""
    from robustify.scoring.text import normalize_text

    return _cosine(normalize_text(a), normalize_text(b))


_score = similarity_scorer(EMBED_THRESHOLD, measure=_cosine)


@register_scorer("similarity_embed")
def score_similarity_embed(item: Item, text: str) -> Score:
    """Embedding cosine >= :data:`EMBED_THRESHOLD` with no negation/number/yes-no mismatch."""
    score = _score(item, text)
    if score.unparseable:
        return score
    return replace(score, detail={**score.detail, "model": EMBED_MODEL})


score_similarity_embed.requires = require_embed_extra  # type: ignore[attr-defined]
