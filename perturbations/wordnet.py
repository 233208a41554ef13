"""Find (or build) a WordNet corpus that NLTK can read, without any download.

NLTK's own downloader needs the internet. Debian's ``wordnet-base`` package ships the
same WordNet 3.0 database files under ``/usr/share/wordnet`` but not in the layout NLTK
expects: the ``lexnames`` file is missing. :func:`load_wordnet` therefore looks in two
places, in order:

1. NLTK's normal search path (``nltk.data.find("corpora/wordnet")``), where
   ``python -m nltk.downloader wordnet`` puts the corpus;
2. a corpus folder built once from the Debian files into a cache directory
   (``$ROBUSTIFY_NLTK_DATA`` or ``~/.cache/robustify/nltk_data``), see
   :func:`build_corpus`.

When neither is available it raises :class:`~perturbations.errors.MissingDependencyError`
with one line saying how to get WordNet. Nothing here runs at import time, so importing
this module (and every transform module) works on a machine without WordNet.

NLTK 3.9+ refuses to open corpus files outside the directories on ``nltk.data.path``,
so a cache root that is used gets appended to that list (once; it only adds a place to
look and never shadows the user's own corpora).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

from .errors import MissingDependencyError

__all__ = [
    "INSTALL_HINT",
    "LEXNAMES",
    "CORPUS_FILES",
    "cache_root",
    "debian_wordnet_dir",
    "find_nltk_wordnet",
    "build_corpus",
    "locate_wordnet",
    "load_wordnet",
    "wordnet_available",
]

log = logging.getLogger(__name__)

INSTALL_HINT = ("WordNet is not installed: run 'apt-get install wordnet-base' "
                "or 'python -m nltk.downloader wordnet'")
"""The one line shown when no WordNet can be found."""

# The 45 lexicographer files of WordNet 3.0, by index (lexnames(5WN)). NLTK reads
# "index<TAB>name<TAB>syntactic category" and asserts the index equals the line number.
# Categories: 1 noun, 2 verb, 3 adjective, 4 adverb.
LEXNAMES: tuple[str, ...] = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal",
    "noun.artifact", "noun.attribute", "noun.body", "noun.cognition", "noun.communication",
    "noun.event", "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive",
    "noun.object", "noun.person", "noun.phenomenon", "noun.plant", "noun.possession",
    "noun.process", "noun.quantity", "noun.relation", "noun.shape", "noun.state",
    "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition",
    "verb.communication", "verb.competition", "verb.consumption", "verb.contact",
    "verb.creation", "verb.emotion", "verb.motion", "verb.perception", "verb.possession",
    "verb.social", "verb.stative", "verb.weather", "adj.ppl",
)
"""Lexicographer file names, index 0..44."""

_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}

CORPUS_FILES: tuple[str, ...] = (
    "index.noun", "index.verb", "index.adj", "index.adv",
    "data.noun", "data.verb", "data.adj", "data.adv",
    "noun.exc", "verb.exc", "adj.exc", "adv.exc",
)
"""Database files a corpus folder needs besides ``lexnames`` (``cntlist.rev`` is optional:
without it every lemma count is zero)."""

_OPTIONAL_FILES = ("cntlist.rev", "index.sense")
_DEBIAN_DIRS = ("/usr/share/wordnet",)
_lock = threading.Lock()


def cache_root() -> Path:
    """The nltk_data-style folder corpora are built into.

    ``$ROBUSTIFY_NLTK_DATA`` when set, else ``~/.cache/robustify/nltk_data``
    (``$XDG_CACHE_HOME`` is honoured).
    """
    env = os.environ.get("ROBUSTIFY_NLTK_DATA")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "robustify" / "nltk_data"


def _has_database(folder: Path) -> bool:
    return all((folder / name).is_file() for name in CORPUS_FILES)


def debian_wordnet_dir() -> Path | None:
    """The folder holding the Debian ``wordnet-base`` database files, if any.

    ``$WNSEARCHDIR`` (the variable WordNet's own tools read) is tried first.
    """
    candidates = [os.environ.get("WNSEARCHDIR", ""), *_DEBIAN_DIRS]
    for raw in candidates:
        if raw and _has_database(Path(raw)):
            return Path(raw)
    return None


def find_nltk_wordnet() -> Any | None:
    """NLTK's own WordNet corpus on its search path (a path pointer), or None."""
    import nltk

    try:
        return nltk.data.find("corpora/wordnet")
    except (LookupError, OSError, ValueError):  # NLTK's path guard raises PermissionError
        return None


def _lexnames_text() -> str:
    return "".join(f"{i:02d}\t{name}\t{_CATEGORY[name.split('.')[0]]}\n"
                   for i, name in enumerate(LEXNAMES))


def build_corpus(source: str | os.PathLike[str], root: str | os.PathLike[str]) -> Path:
    """Build ``<root>/corpora/wordnet`` from WordNet database files in ``source``.

    The files are copied (NLTK refuses symlinks that lead outside its data roots) and
    the ``lexnames`` file NLTK needs is written. The folder is assembled under a
    temporary name and renamed into place, so concurrent processes never see half a
    corpus; an existing complete corpus is kept as it is.

    Args:
        source: Folder with ``index.*``, ``data.*`` and ``*.exc`` (e.g. ``/usr/share/wordnet``).
        root: An nltk_data-style folder (see :func:`cache_root`).

    Returns:
        The corpus folder.

    Raises:
        MissingDependencyError: ``source`` lacks database files or ``root`` is not writable.
    """
    source, root = Path(source), Path(root)
    target = root / "corpora" / "wordnet"
    if _has_database(target) and (target / "lexnames").is_file():
        return target
    missing = [name for name in CORPUS_FILES if not (source / name).is_file()]
    if missing:
        raise MissingDependencyError(f"{source} is not a WordNet database folder "
                                     f"(missing {', '.join(missing)}); {INSTALL_HINT}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=target.parent))
        try:
            for name in CORPUS_FILES + _OPTIONAL_FILES:
                if (source / name).is_file():
                    shutil.copyfile(source / name, staging / name)
            (staging / "lexnames").write_text(_lexnames_text(), encoding="utf-8")
            os.chmod(staging, 0o755)
            try:
                os.rename(staging, target)
            except OSError:
                # Another process won the race (or a broken folder is in the way).
                if not (_has_database(target) and (target / "lexnames").is_file()):
                    raise
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    except OSError as exc:
        raise MissingDependencyError(
            f"cannot build the WordNet corpus in {target} ({exc}); set ROBUSTIFY_NLTK_DATA "
            f"to a writable folder") from exc
    log.info("built an NLTK WordNet corpus from %s in %s", source, target)
    return target


def _ensure_on_nltk_path(root: Path) -> None:
    import nltk

    text = str(root)
    if text not in [str(p) for p in nltk.data.path]:
        nltk.data.path.append(text)


def locate_wordnet() -> Any | None:
    """Where a usable WordNet corpus is, building it from Debian files if needed.

    Returns:
        A path (or NLTK path pointer) to a WordNet corpus folder, or None when neither
        NLTK's data nor Debian's ``wordnet-base`` is installed.

    Raises:
        MissingDependencyError: the Debian files exist but the cache is not writable.
    """
    found = find_nltk_wordnet()
    if found is not None:
        return found
    root = cache_root()
    built = root / "corpora" / "wordnet"
    if not (_has_database(built) and (built / "lexnames").is_file()):
        source = debian_wordnet_dir()
        if source is None:
            return None
        built = build_corpus(source, root)
    _ensure_on_nltk_path(root)
    return built


def _reader_class() -> type:
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class _EnglishWordNetReader(WordNetCorpusReader):
        """WordNet reader for the English database alone.

        The stock reader maps synsets to the corpus named "wordnet" on NLTK's path at
        start-up, for Open Multilingual WordNet lookups; that needs ``index.sense``,
        which Debian does not ship. English lookups never use the mapping.
        """

        def map_wn(self, version: str = "wordnet") -> None:  # noqa: D102
            return None

    return _EnglishWordNetReader


_READERS: dict[str, Any] = {}


def _location_key(location: Any) -> str:
    zipped = getattr(location, "zipfile", None)
    if zipped is not None:  # nltk.downloader's wordnet.zip
        return f"{getattr(zipped, 'filename', zipped)}!{getattr(location, 'entry', '')}"
    return os.path.realpath(os.fspath(location))


def load_wordnet() -> Any:
    """Return an NLTK ``WordNetCorpusReader``, loaded once per process and location.

    Raises:
        MissingDependencyError: no WordNet can be found; the message says how to get it.
    """
    with _lock:
        location = locate_wordnet()
        if location is None:
            raise MissingDependencyError(INSTALL_HINT)
        key = _location_key(location)
        reader = _READERS.get(key)
        if reader is None:
            try:
                with warnings.catch_warnings():
                    # "multilingual functions are not available": expected, no OMW reader
                    warnings.simplefilter("ignore")
                    # CorpusReader takes a str or an NLTK path pointer, not a Path
                    root = os.fspath(location) if isinstance(location, Path) else location
                    reader = _reader_class()(root, None)
            except (OSError, LookupError, ValueError, AssertionError) as exc:
                raise MissingDependencyError(f"WordNet at {key} is unreadable ({exc}); "
                                             f"{INSTALL_HINT}") from exc
            _READERS[key] = reader
        return reader


def wordnet_available() -> bool:
    """True when :func:`load_wordnet` would succeed (may build the cache corpus)."""
    try:
        load_wordnet()
    except MissingDependencyError:
        return False
    return True
