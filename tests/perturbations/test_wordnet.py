"""perturbations.wordnet: finding NLTK's corpus, or building one from Debian's files."""

from __future__ import annotations

from pathlib import Path

import nltk
import pytest

from perturbations import MissingDependencyError
from perturbations import wordnet

DEBIAN = wordnet.debian_wordnet_dir()
needs_debian = pytest.mark.skipif(DEBIAN is None, reason="apt-get install wordnet-base")


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No NLTK corpus on the search path, an empty cache, and nltk.data.path restored."""
    monkeypatch.setattr(wordnet, "find_nltk_wordnet", lambda: None)
    monkeypatch.setattr(wordnet, "_READERS", {})
    monkeypatch.setattr(nltk.data, "path", list(nltk.data.path))
    monkeypatch.setenv("ROBUSTIFY_NLTK_DATA", str(tmp_path / "nltk_data"))
    return tmp_path / "nltk_data"


def test_lexnames_has_45_numbered_lines_with_categories() -> None:
    lines = wordnet._lexnames_text().splitlines()
    assert len(lines) == 45 == len(wordnet.LEXNAMES)
    assert lines[0] == "00\tadj.all\t3"
    assert lines[3] == "03\tnoun.Tops\t1"
    assert lines[29] == "29\tverb.body\t2"
    assert lines[2] == "02\tadv.all\t4"
    assert lines[44] == "44\tadj.ppl\t3"


def test_cache_root_honours_env(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("ROBUSTIFY_NLTK_DATA", str(tmp_path / "x"))
    assert wordnet.cache_root() == tmp_path / "x"
    monkeypatch.delenv("ROBUSTIFY_NLTK_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert wordnet.cache_root() == tmp_path / "cache" / "robustify" / "nltk_data"


def test_build_corpus_refuses_a_folder_without_database(tmp_path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "index.noun").write_text("")
    with pytest.raises(MissingDependencyError, match="missing index.verb"):
        wordnet.build_corpus(tmp_path / "src", tmp_path / "out")
    assert not (tmp_path / "out" / "corpora" / "wordnet").exists()


def test_nothing_installed_means_none_and_a_one_line_error(isolated, monkeypatch) -> None:
    monkeypatch.setattr(wordnet, "debian_wordnet_dir", lambda: None)
    assert wordnet.locate_wordnet() is None
    with pytest.raises(MissingDependencyError) as info:
        wordnet.load_wordnet()
    assert str(info.value) == wordnet.INSTALL_HINT
    assert not wordnet.wordnet_available()


def test_unwritable_cache_is_a_missing_dependency(isolated, tmp_path, monkeypatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("ROBUSTIFY_NLTK_DATA", str(blocker / "nltk_data"))
    src = tmp_path / "src"
    src.mkdir()
    for name in wordnet.CORPUS_FILES:
        (src / name).write_text("")
    monkeypatch.setattr(wordnet, "debian_wordnet_dir", lambda: src)
    with pytest.raises(MissingDependencyError, match="ROBUSTIFY_NLTK_DATA"):
        wordnet.locate_wordnet()


def test_wnsearchdir_is_preferred(monkeypatch, tmp_path) -> None:
    for name in wordnet.CORPUS_FILES:
        (tmp_path / name).write_text("")
    monkeypatch.setenv("WNSEARCHDIR", str(tmp_path))
    assert wordnet.debian_wordnet_dir() == tmp_path


@needs_debian
def test_builds_a_readable_corpus_from_debian_files(isolated) -> None:
    location = wordnet.locate_wordnet()
    corpus = Path(location)
    assert corpus == isolated / "corpora" / "wordnet"
    assert (corpus / "lexnames").read_text().startswith("00\tadj.all\t3\n")
    assert all((corpus / name).is_file() and not (corpus / name).is_symlink()
               for name in wordnet.CORPUS_FILES)
    assert str(isolated) in [str(p) for p in nltk.data.path]
    wn = wordnet.load_wordnet()
    assert wn is wordnet.load_wordnet()  # loaded once
    assert wn.get_version() == "3.0"
    assert "purchase" in wn.synset("buy.v.01").lemma_names()
    assert wn.synsets("dogs")[0].name() == "dog.n.01"  # morphology (the .exc files) works
    # a second build into the same place keeps the finished corpus
    assert wordnet.build_corpus(DEBIAN, isolated) == corpus
