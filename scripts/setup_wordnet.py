"""Make WordNet available to the ``synonyms`` transform, offline.

Usage (from the repository root)::

    apt-get install -y wordnet-base      # Debian/Ubuntu: WordNet 3.0 database files
    python scripts/setup_wordnet.py      # optional: build the NLTK corpus now, not on first use

Prints where the corpus is and exits 0, or prints how to install WordNet and exits 1.
``ROBUSTIFY_NLTK_DATA`` chooses the cache folder (default ``~/.cache/robustify/nltk_data``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perturbations.errors import MissingDependencyError  # noqa: E402
from perturbations.wordnet import INSTALL_HINT, load_wordnet, locate_wordnet  # noqa: E402

__all__ = ["main"]


def main() -> int:
    """Locate or build the corpus, load it once to check it, report; return the exit code."""
    try:
        location = locate_wordnet()
        if location is None:
            raise MissingDependencyError(INSTALL_HINT)
        reader = load_wordnet()
    except MissingDependencyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"WordNet {reader.get_version()} ready at {location}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
