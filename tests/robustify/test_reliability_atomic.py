"""Every output file is written atomically: no reader ever sees half a file, and no
temporary file is left behind.

* White box: during a whole run (and a ``perturb``), every open-for-writing inside the
  output folder is recorded. Only the atomic writer's temporary files
  (``.robustify-tmp.NAME.XXXX.tmp``), files inside its staging folder
  (``.robustify-tmp.staging.XXXX.tmp/``) and the folder lock may be opened for writing;
  every output file must be the target of an ``os.replace`` from a temporary file in the
  same folder or from the same place in the staging folder.
* Black box: while a run rewrites a folder that holds complete older versions of every
  output, a reader thread keeps reading every file in it; each version it sees must be
  byte-identical to the complete old or the complete new file.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import io
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from robustify import cli
from robustify.atomic import TEMP_PREFIX
from robustify.pipeline.run import run_job
from robustify.pipeline.jobfile import JobConfig, ModelConfig
from tests.robustify.reliability_helpers import ECHO_MODEL, popen_cli, temp_files

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _is_temp(path: Path) -> bool:
    return any(part.startswith(TEMP_PREFIX) for part in path.parts)


def _staged_from(src: Path, dst: Path) -> bool:
    """``src`` is ``dst``'s place inside a staging folder of the run folder."""
    for parent in src.parents:
        if parent.name.startswith(f"{TEMP_PREFIX}staging."):
            return parent.parent / src.relative_to(parent) == dst
    return False


class WriteRecorder:
    """Records writes and renames below one folder while installed."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.opened: list[Path] = []
        self.replaced: list[tuple[Path, Path]] = []

    def _inside(self, path: Any) -> Path | None:
        try:
            resolved = Path(os.fsdecode(path)).resolve()
        except (TypeError, ValueError):
            return None
        return resolved if self.root in resolved.parents or resolved == self.root else None

    def install(self, monkeypatch: pytest.MonkeyPatch) -> "WriteRecorder":
        real_open, real_os_open, real_replace = builtins.open, os.open, os.replace

        def open_(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            if isinstance(file, (str, bytes, os.PathLike)) and any(c in mode for c in "wax+"):
                inside = self._inside(file)
                if inside is not None:
                    self.opened.append(inside)
            return real_open(file, mode, *args, **kwargs)

        def os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            # opening a folder (filelock probes one with O_TMPFILE) writes no named file
            if flags & _WRITE_FLAGS and not os.path.isdir(path):
                inside = self._inside(path)
                if inside is not None:
                    self.opened.append(inside)
            return real_os_open(path, flags, *args, **kwargs)

        def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            a, b = self._inside(src), self._inside(dst)
            if b is not None:
                self.replaced.append((a or Path(os.fsdecode(src)), b))
            return real_replace(src, dst, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", open_)
        monkeypatch.setattr(io, "open", open_)  # pathlib's write_text/open go through io.open
        monkeypatch.setattr(os, "open", os_open)
        monkeypatch.setattr(os, "replace", replace)
        return self

    def check(self, allowed: set[str] = frozenset()) -> list[Path]:
        """Assert the atomic discipline; returns the output files found."""
        direct = [p for p in self.opened if not _is_temp(p) and p.name not in allowed]
        assert direct == [], f"written in place, not atomically: {direct}"
        for src, dst in self.replaced:
            assert _is_temp(src) and (src.parent == dst.parent or _staged_from(src, dst)), \
                (src, dst)
        targets = {dst for _, dst in self.replaced}
        files = [p.resolve() for p in self.root.rglob("*")
                 if p.is_file() and p.name not in allowed]
        assert files, "nothing was written"
        missing = [p for p in files if p not in targets]
        assert missing == [], f"not written through os.replace: {missing}"
        assert not temp_files(self.root)
        return files


def test_a_run_writes_every_output_atomically(tmp_path, monkeypatch):
    out = tmp_path / "run"
    recorder = WriteRecorder(out).install(monkeypatch)
    job = JobConfig(models=(ModelConfig(spec=ECHO_MODEL),), transforms=("typos@high",),
                    limit=6, out=str(out), cache=str(tmp_path / "c.sqlite"), noise_floor=1)
    run_job(job, progress=False)
    files = recorder.check(allowed={".robustify.lock"})
    names = {p.name for p in files}
    assert {"variants.jsonl", "results.jsonl", "results.csv", "summary.csv", "report.html",
            "report.md", "manifest.json", "noise_floor.jsonl"} <= names
    assert any(p.parent.name == "charts" for p in files)


def test_perturb_writes_its_file_atomically(tmp_path, monkeypatch):
    out = tmp_path / "perturbed"
    recorder = WriteRecorder(out).install(monkeypatch)
    code = cli.main(["perturb", "--limit", "5", "--transforms", "typos", "--out",
                     str(out / "variants.jsonl")])
    assert code == 0
    assert [p.name for p in recorder.check()] == ["variants.jsonl"]


def test_the_recorder_catches_an_in_place_write(tmp_path, monkeypatch):
    """Control: a plain write_text into the folder is flagged."""
    out = tmp_path / "x"
    out.mkdir()
    recorder = WriteRecorder(out).install(monkeypatch)
    (out / "report.html").write_text("half")
    with pytest.raises(AssertionError, match="not atomically"):
        recorder.check()


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if p.is_file() and not _is_temp(p)
            and p.name != ".robustify.lock"}


OUTPUTS = ("variants.jsonl", "results.jsonl", "results.csv", "summary.csv", "report.html",
           "report.md", "manifest.json", "charts/overestimation.png", "charts/heatmap.png")


def test_a_reader_never_sees_a_partial_file(tmp_path):
    """While a run replaces an existing folder's files, every read sees a whole file."""
    out, cache = tmp_path / "run", tmp_path / "c.sqlite"
    for name in OUTPUTS:  # complete "old" versions, as a previous run would have left
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"complete old version of {name}\n".encode() * 2000)
    # the old run's manifest marks the folder as a robustify run (else --out refuses it)
    (out / "manifest.json").write_text(json.dumps(
        {"robustify_version": "old", "padding": ["complete old version"] * 2000}))
    old = _digests(out)
    seen: dict[str, set[str]] = {}
    stop = threading.Event()
    reads = [0]

    def watch() -> None:
        while not stop.is_set():
            try:
                paths = list(out.rglob("*"))
            except FileNotFoundError:  # a staging folder went away during the walk
                continue
            for path in paths:
                if _is_temp(path) or path.name == ".robustify.lock":
                    continue
                try:
                    data = path.read_bytes()
                except (FileNotFoundError, IsADirectoryError):
                    continue
                reads[0] += 1
                seen.setdefault(str(path.relative_to(out)), set()).add(
                    hashlib.sha256(data).hexdigest())
            time.sleep(0.001)  # leave the CPU to the run

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    proc = popen_cli("run", "--model", ECHO_MODEL, "--transforms", "typos@high", "--limit", "8",
                     "--out", str(out), "--cache", str(cache), "--quiet",
                     log=tmp_path / "run.log")
    assert proc.wait(timeout=180) == 0, (tmp_path / "run.log").read_text()
    stop.set()
    watcher.join(10)
    new = _digests(out)
    assert reads[0] > 50
    assert set(old) <= set(new)
    for name in OUTPUTS:
        assert new[name] != old[name], f"{name} was not rewritten"
    for name, versions in seen.items():
        partial = versions - {old.get(name), new[name]}
        assert not partial, f"{name}: a reader saw a version that is neither old nor new"
    # the old versions were seen before the new ones replaced them
    assert any(old[name] in seen.get(name, ()) for name in OUTPUTS)
    assert not temp_files(out)


def test_variants_file_is_never_seen_half_written(tmp_path):
    """variants.jsonl is streamed while the runner plans (the first calls already out)
    and renamed into place whole: a reader sees no file or the complete one."""
    from tests.robustify import reliability_models

    out = tmp_path / "run"
    seen = reliability_models.SEEN_AT_FIRST_CALL
    seen.clear()
    seen["path"] = str(out / "variants.jsonl")
    job = JobConfig(models=(ModelConfig(
        spec="python:tests.robustify.reliability_models:variants_file_watcher"),),
        transforms=("typos", "slang@high"), limit=7, out=str(out), cache="off")
    result = run_job(job, progress=False)
    final = (out / "variants.jsonl").read_text(encoding="utf-8").splitlines()
    # 7 clean + 7 x (typos at low, medium, high + slang@high)
    assert len(final) == 7 + 7 * 4 == result.manifest["n_variants"] + 7
    assert "lines" in seen  # the watcher looked at the first call
    assert seen["lines"] in (None, final)  # not there yet, or whole
    assert not temp_files(out)


def test_a_failure_while_perturbing_leaves_no_variants_file(tmp_path, monkeypatch):
    import robustify.pipeline.prepare as api  # where PreparedJob.variants draws them

    real = api.perturb_items

    def failing(*args, **kwargs):
        for n, variant in enumerate(real(*args, **kwargs)):
            if n == 9:
                raise RuntimeError("transform blew up")
            yield variant

    monkeypatch.setattr(api, "perturb_items", failing)
    out = tmp_path / "run"
    job = JobConfig(models=(ModelConfig(spec=ECHO_MODEL),), transforms=("typos",), limit=6,
                    out=str(out), cache=str(tmp_path / "c.sqlite"))
    with pytest.raises(RuntimeError, match="transform blew up"):
        run_job(job, progress=False)
    assert not (out / "variants.jsonl").exists()
    assert not temp_files(out)
    assert not (out / "results.jsonl").exists()


def test_a_failure_while_planning_leaves_no_variants_file(tmp_path, monkeypatch):
    """The consumer fails half way through the stream: the temporary file goes at once."""
    import robustify.runner.requests as requests  # the prompt builder a job's runner calls

    real = requests.build_messages
    calls = []

    def failing(item, *args, **kwargs):
        calls.append(item.id)
        if len(calls) == 12:
            raise RuntimeError("template blew up")
        return real(item, *args, **kwargs)

    monkeypatch.setattr(requests, "build_messages", failing)
    out = tmp_path / "run"
    job = JobConfig(models=(ModelConfig(spec=ECHO_MODEL),), transforms=("typos",), limit=6,
                    out=str(out), cache=str(tmp_path / "c.sqlite"))
    with pytest.raises(RuntimeError, match="template blew up") as raised:
        run_job(job, progress=False)
    # checked while the traceback (and with it the runner's frames) is still alive
    assert raised.value is not None
    assert not (out / "variants.jsonl").exists()
    assert not temp_files(out), temp_files(out)
