"""Frozen variants files: the JSONL ``perturb`` writes and a run's ``variants.jsonl``.

``run --variants FILE`` asks exactly these variants again, paired with their clean items:
the clean originals come from the file's ``clean`` rows (a run's ``variants.jsonl`` has
them) or, for a ``perturb`` file, from ``--data``. Every problem names the file and line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from perturbations import CLEAN, Item, Variant
from perturbations.errors import DataError

from robustify.data.readers import iter_json_lines, open_binary

__all__ = ["FrozenVariants", "read_variants", "pair_variants"]


@dataclass
class FrozenVariants:
    """What a variants file holds, checked in one pass; the variants are read again,
    streamed, each time the object is iterated (a file of millions of variants is never
    held in memory: what stays is per item, not per variant)."""

    path: str
    clean: list[Item]
    """The clean originals the file itself carries (empty for a ``perturb`` file)."""
    lines: dict[str, int]
    """The first line of each item id's variant, for error messages (file order)."""
    counts: dict[str, int]
    """Perturbed variants per item id."""
    specs: list[str]
    """The distinct specs, in file order."""
    seeds: set[int] = field(default_factory=set)
    """The seeds of the variants."""
    keep: frozenset[str] | None = None
    """Only the variants of these item ids are yielded (``None``: all)."""
    stamp: tuple[int, int] = (0, 0)
    """Size and modification time when checked: a file changed since is refused."""

    def only(self, ids: set[str] | frozenset[str]) -> "FrozenVariants":
        """The same file, keeping only the variants of the items ``ids``."""
        import dataclasses

        return dataclasses.replace(self, keep=frozenset(ids))

    @property
    def variants(self) -> list[Variant]:
        """Every kept variant as a list (reads the whole file into memory: iterate instead)."""
        return list(self)

    def __len__(self) -> int:
        if self.keep is None:
            return sum(self.counts.values())
        return sum(n for item_id, n in self.counts.items() if item_id in self.keep)

    def __iter__(self) -> Iterator[Variant]:
        """The perturbed variants (``clean`` rows left out), in file order, streamed."""
        p = Path(self.path).expanduser()
        if _stamp(p, self.path) != self.stamp:
            raise DataError("the variants file changed since it was checked; run again",
                            path=self.path)
        keep = self.keep
        for _, variant in _records(p, self.path):
            if variant.spec != CLEAN and (keep is None or variant.item.id in keep):
                yield variant


def _stamp(p: Path, display: str) -> tuple[int, int]:
    try:
        st = p.stat()
    except OSError as exc:
        raise DataError(f"cannot read the file: {exc.strerror or exc}", path=display) from None
    return st.st_size, st.st_mtime_ns


def _records(p: Path, display: str) -> Iterator[tuple[int, Variant]]:
    """``(line, variant)`` of every line, each checked (one error: file, line, field)."""
    with open_binary(p, display) as handle:
        for lineno, record in iter_json_lines(handle, display):
            if not isinstance(record, dict):
                raise DataError("expected a variant object", path=display, line=lineno)
            for key in ("item", "spec", "transform", "severity", "seed"):
                if key not in record:
                    hint = (" (a flat export is not a variants file: pass the variants "
                            "JSONL 'perturb' writes without --export)"
                            if "input" in record else "")
                    raise DataError(f"not a variant: no {key!r}{hint}", path=display,
                                    line=lineno, field=key)
            try:
                variant = Variant.from_dict(record)
            except DataError as exc:
                raise DataError(str(exc), path=display, line=lineno, field="item") from None
            except (KeyError, TypeError, ValueError) as exc:
                raise DataError(f"not a valid variant ({type(exc).__name__}: {exc})",
                                path=display, line=lineno) from None
            yield lineno, variant


def read_variants(path: str | os.PathLike[str]) -> FrozenVariants:
    """Check a variants JSONL file in one streamed pass; one :class:`DataError` (file,
    line, field) per problem. Keeps the clean rows and per-item counts, not the variants."""
    display = os.fspath(path)
    p = Path(display).expanduser()
    if not p.exists():
        raise DataError("variants file not found", path=display)
    if not p.is_file():
        raise DataError("expected a variants JSONL file (written by 'perturb' or a run's "
                        "variants.jsonl)", path=display)
    stamp = _stamp(p, display)
    clean: list[Item] = []
    lines: dict[str, int] = {}
    counts: dict[str, int] = {}
    specs: dict[str, None] = {}
    seeds: set[int] = set()
    for lineno, variant in _records(p, display):
        if variant.spec == CLEAN:
            clean.append(variant.item)
            continue
        item_id = variant.item.id
        if item_id not in lines:
            lines[item_id] = lineno
            counts[item_id] = 1
        else:
            counts[item_id] += 1
        specs.setdefault(variant.spec, None)
        seeds.add(variant.seed)
    if not lines:
        raise DataError("the variants file holds no perturbed variants", path=display)
    return FrozenVariants(display, clean, lines, counts, list(specs), seeds, stamp=stamp)


def pair_variants(frozen: FrozenVariants, items: Sequence[Item], *, source: str
                  ) -> list[Item]:
    """Check every variant has its clean item; return the items, in their order.

    Args:
        frozen: The file read by :func:`read_variants`.
        items: The clean originals (the file's own, or loaded from ``--data``).
        source: Where ``items`` came from, for the message.

    Raises:
        DataError: a variant's item is not among ``items`` (file, line and item id named).
    """
    known = {item.id for item in items}
    for item_id, lineno in frozen.lines.items():
        if item_id not in known:
            raise DataError(f"variant of item {item_id!r} has no clean item in "
                            f"{source}; pass the data the variants were made from with "
                            f"--data", path=frozen.path, line=lineno, field="item_id")
    return list(items)
