"""What a batch run keeps on disk: its input files and the ids of what it submitted.

The folder (``batches/`` in the run folder) holds one JSONL input file per batch
(``chunk-<id>.jsonl``, written whole and renamed into place) and ``state.json``, saved
atomically after every step that the API cannot undo: a file uploaded (its file id), a
batch about to be created (``creating``), a batch created (its batch id), its answers
stored in the cache. A run stopped at any point resumes from it: a written file is
uploaded, an uploaded one gets its batch, a batch whose creation may have happened
without its id being saved is looked up among the account's batches by the chunk id
in its metadata before anything is created again, and a pending batch is only polled.
Nothing in the folder holds a key: the files hold prompts (as ``variants.jsonl`` does)
and the state holds ids, the base URL and the *name* of the key's variable.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

from robustify.atomic import sweep_temp_files, write_json_atomic

__all__ = ["BatchState", "ChunkWriter", "STATE_FILE", "DONE"]

STATE_FILE = "state.json"
DONE = "stored"
"""Status of a chunk whose answers (and failures) have been read back."""
_VERSION = 1


class BatchState:
    """The chunks of one batch folder and their progress (see the module docstring)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        # leftovers of a process killed while writing: never recorded, so never submitted
        sweep_temp_files(self.folder)
        for part in self.folder.glob("*.part"):
            part.unlink()
        self.path = self.folder / STATE_FILE
        self.chunks: list[dict[str, Any]] = []
        if self.path.is_file():
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self.chunks = list(data.get("chunks") or [])

    def save(self) -> None:
        """Write ``state.json`` atomically."""
        write_json_atomic(self.path, {"version": _VERSION, "chunks": self.chunks})

    def add(self, backend: Any, file_name: str, requests: int, size: int, *,
            attempt: int = 1, retry_of: str | None = None) -> dict[str, Any]:
        """Record a written input file (saved at once) and return its chunk entry."""
        chunk = {"id": file_name[len("chunk-"):-len(".jsonl")], "file": file_name,
                 "label": backend.label, "model": backend.model,
                 "base_url": backend.base_url, "api_key_env": backend.api_key_env,
                 "requests": requests, "bytes": size, "attempt": attempt,
                 "retry_of": retry_of, "status": "written", "written_at": time.time()}
        self.chunks.append(chunk)
        self.save()
        return chunk

    def pending(self) -> list[dict[str, Any]]:
        """Chunks whose answers are not read back yet."""
        return [c for c in self.chunks if c.get("status") != DONE]

    def lines(self, chunk: dict[str, Any]) -> Iterator[tuple[str, bytes]]:
        """``(custom_id, line)`` of every request of a chunk's input file."""
        with open(self.folder / chunk["file"], "rb") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)["custom_id"], line

    def pending_ids(self) -> set[str]:
        """Custom ids (cache keys) already in a batch not yet read back: never sent again."""
        ids: set[str] = set()
        for chunk in self.pending():
            ids.update(custom_id for custom_id, _ in self.lines(chunk))
        return ids


class ChunkWriter:
    """Request lines of one backend -> input files cut at the request and byte limits."""

    def __init__(self, state: BatchState, backend: Any, max_requests: int, max_bytes: int,
                 *, attempt: int = 1, retry_of: str | None = None) -> None:
        self.state = state
        self.backend = backend
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self.attempt = attempt
        self.retry_of = retry_of
        self.written: list[dict[str, Any]] = []
        self._fh: Any = None
        self._name = ""
        self._count = 0
        self._size = 0

    def fits(self, line: bytes) -> bool:
        """Whether one line fits in an input file at all."""
        return len(line) <= self.max_bytes

    def add(self, line: bytes) -> None:
        """Append a line, starting a new file when the current one is full."""
        if self._fh is not None and (self._count >= self.max_requests
                                     or self._size + len(line) > self.max_bytes):
            self.close()
        if self._fh is None:
            self._name = f"chunk-{uuid.uuid4().hex[:16]}.jsonl"
            self._fh = open(self.state.folder / (self._name + ".part"), "wb")
            self._count = self._size = 0
        self._fh.write(line)
        self._count += 1
        self._size += len(line)

    def close(self) -> None:
        """Finish the current file: flushed, renamed into place, recorded in the state."""
        if self._fh is None:
            return
        fh, self._fh = self._fh, None
        fh.flush()
        os.fsync(fh.fileno())
        fh.close()
        final = self.state.folder / self._name
        os.replace(self.state.folder / (self._name + ".part"), final)
        self.written.append(self.state.add(self.backend, self._name, self._count, self._size,
                                           attempt=self.attempt, retry_of=self.retry_of))
