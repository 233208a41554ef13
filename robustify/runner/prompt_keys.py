"""Compact storage of a run's prompt keys: millions of distinct prompts in a few bytes each.

A run plans every distinct prompt before its first call. Held as Python objects (a
65-byte ``bytes`` per key, a dict entry and an ``int`` per group) that is about 150
bytes a prompt, 2 GB at 13 million prompts. Here:

* :class:`KeyArray` keeps the 32-byte raw keys packed in one buffer; past
  :data:`SPILL_KEYS` keys it moves them to an anonymous temporary file (read back with
  ``pread``), so a huge run keeps only an 8-byte fingerprint per prompt in memory.
* :class:`KeyIndex` finds the group of a key with an open-addressing table of 4-byte
  group numbers (linear probing on the fingerprint, confirmed on the whole key).
"""

from __future__ import annotations

import os
import tempfile
from array import array
from typing import Iterator, overload

import numpy as np

__all__ = ["KeyArray", "KeyIndex", "SPILL_KEYS", "KEY_BYTES"]

KEY_BYTES = 32
"""Bytes of a raw key (sha256)."""
SPILL_KEYS = 1 << 20
"""Keys held in memory before a :class:`KeyArray` moves them to a temporary file (32 MiB)."""
_BUFFER = 1 << 16
"""Keys written to the file at once."""
_GROW_BLOCK = 1 << 20
"""Keys placed at once when the index grows."""


class KeyArray:
    """An append-only sequence of 32-byte keys (``keys[i]`` and ``keys[a:b]`` give ``bytes``).

    Args:
        spill: Keys kept in memory before they move to a temporary file (``None``: never).
    """

    def __init__(self, spill: int | None = SPILL_KEYS) -> None:
        self._memory = bytearray()
        self._file: int | None = None
        self._on_disk = 0
        self._spill = spill
        self.fingerprints = array("q")
        """The first 8 bytes of each key as a signed int (for :class:`KeyIndex`)."""

    def __len__(self) -> int:
        return len(self.fingerprints)

    @property
    def spilled(self) -> bool:
        """True once the keys live in a temporary file."""
        return self._file is not None

    def append(self, key: bytes) -> None:
        """Add one 32-byte key."""
        self.fingerprints.append(int.from_bytes(key[:8], "little", signed=True))
        self._memory += key
        pending = len(self._memory) // KEY_BYTES
        if self._file is None:
            if self._spill is not None and pending > self._spill:
                fd, name = tempfile.mkstemp(prefix=".robustify-keys.")
                os.unlink(name)  # anonymous: gone with the process, whatever happens
                self._file = fd
                self._flush()
        elif pending >= _BUFFER:
            self._flush()

    def _flush(self) -> None:
        assert self._file is not None
        view = memoryview(self._memory)
        written = 0
        while written < len(view):
            written += os.pwrite(self._file, view[written:], self._on_disk * KEY_BYTES + written)
        view.release()
        self._on_disk += len(self._memory) // KEY_BYTES
        self._memory = bytearray()

    def _read(self, start: int, stop: int) -> bytes:
        """Raw bytes of keys ``start`` .. ``stop - 1``."""
        out = b""
        if self._file is not None and start < self._on_disk:
            end = min(stop, self._on_disk)
            size = (end - start) * KEY_BYTES
            out = os.pread(self._file, size, start * KEY_BYTES)
            if len(out) != size:  # pragma: no cover - a regular file reads whole
                raise OSError("short read from the prompt key file")
            start = end
        if start < stop:
            base = self._on_disk
            out += bytes(self._memory[(start - base) * KEY_BYTES:(stop - base) * KEY_BYTES])
        return out

    @overload
    def __getitem__(self, index: int) -> bytes: ...
    @overload
    def __getitem__(self, index: slice) -> list[bytes]: ...

    def __getitem__(self, index: int | slice) -> bytes | list[bytes]:
        n = len(self)
        if isinstance(index, slice):
            start, stop, step = index.indices(n)
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            if stop <= start:
                return []
            data = self._read(start, stop)
            return [data[i:i + KEY_BYTES] for i in range(0, len(data), KEY_BYTES)]
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("key index out of range")
        return self._read(index, index + 1)

    def __iter__(self) -> Iterator[bytes]:
        for start in range(0, len(self), _BUFFER):
            yield from self[start:start + _BUFFER]

    def close(self) -> None:
        """Drop every key and the temporary file."""
        if self._file is not None:
            os.close(self._file)
            self._file = None
        self._memory = bytearray()
        self._on_disk = 0
        self.fingerprints = array("q")

    def __del__(self) -> None:
        if getattr(self, "_file", None) is not None:
            try:
                os.close(self._file)  # type: ignore[arg-type]
            except OSError:  # pragma: no cover
                pass


class KeyIndex:
    """Key -> group number for the keys of a :class:`KeyArray` (group ``g`` is key ``g``).

    An open-addressing table of 4-byte group numbers, at most half full (4 to 8 bytes
    a key), probed linearly from the key's fingerprint; a fingerprint match is confirmed
    on the whole key, so two prompts are merged only when their keys are equal.
    """

    _MAX_LOAD = 0.5

    def __init__(self, keys: KeyArray) -> None:
        self.keys = keys
        self._table = array("i", [-1]) * (1 << 10)
        self._mask = len(self._table) - 1

    def find_or_add(self, key: bytes) -> tuple[int, bool]:
        """The group of ``key`` and whether it is new (then appended to :attr:`keys`)."""
        keys = self.keys
        fingerprints = keys.fingerprints
        fp = int.from_bytes(key[:8], "little", signed=True)
        table = self._table
        mask = self._mask
        slot = fp & mask
        while True:
            group = table[slot]
            if group < 0:
                break
            if fingerprints[group] == fp and keys[group] == key:
                return group, False
            slot = (slot + 1) & mask
        group = len(keys)
        keys.append(key)
        table[slot] = group
        if len(keys) > self._MAX_LOAD * len(table):
            self._grow()
        return group, True

    def _grow(self) -> None:
        """Double the table and place every key again, vectorised a block at a time (one
        step per probe; a block bounds the temporary arrays to some 40 MB)."""
        size = len(self._table) * 2
        table = array("i", [-1]) * size
        view = np.frombuffer(table, dtype=np.int32)
        mask = size - 1
        n = len(self.keys)
        fingerprints = np.frombuffer(self.keys.fingerprints, dtype=np.int64)[:n]
        for lo in range(0, n, _GROW_BLOCK):
            pending = np.arange(lo, min(n, lo + _GROW_BLOCK), dtype=np.int64)
            slots = fingerprints[lo:lo + _GROW_BLOCK] & mask
            while pending.size:
                free = view[slots] < 0
                # of the keys aiming at one free slot, the first takes it; the rest move on
                candidates = np.flatnonzero(free)
                taken, first = np.unique(slots[candidates], return_index=True)
                winners = candidates[first]
                view[taken] = pending[winners]
                keep = np.ones(pending.size, dtype=bool)
                keep[winners] = False
                pending = pending[keep]
                slots = (slots[keep] + 1) & mask
        del view, fingerprints
        self._table = table
        self._mask = mask

    def release(self) -> None:
        """Forget the table (the keys stay)."""
        self._table = array("i")
        self._mask = 0
