"""Frozen variants files: the JSONL ``perturb`` writes and a run's ``variants.jsonl``.

``run --variants FILE`` asks exactly these variants again, paired with their clean items:
the clean originals come from the file's ``clean`` rows (a run's ``variants.jsonl`` has
them) or, for a ``perturb`` file, from ``--data``. Every problem names the file and line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from perturbations import CLEAN, Item, Variant
from perturbations.errors import DataError

from robustify.data.readers import iter_json_lines, open_binary

__all__ = ["FrozenVariants", "read_variants", "pair_variants"]


@dataclass
class FrozenVariants:
    """What a variants file holds, in file order."""

    path: str
    variants: list[Variant]
    """The perturbed variants (``clean`` rows left out)."""
    clean: list[Item]
    """The clean originals the file itself carries (empty for a ``perturb`` file)."""
    lines: dict[str, int]
    """The first line of each item id's variant, for error messages."""

    @property
    def specs(self) -> list[str]:
        """The distinct specs, in file order."""
        return list(dict.fromkeys(v.spec for v in self.variants))


def read_variants(path: str | os.PathLike[str]) -> FrozenVariants:
    """Read a variants JSONL file; one :class:`DataError` (file, line, field) per problem."""
    display = os.fspath(path)
    p = Path(display).expanduser()
    if not p.exists():
        raise DataError("variants file not found", path=display)
    if not p.is_file():
        raise DataError("expected a variants JSONL file (written by 'perturb' or a run's "
                        "variants.jsonl)", path=display)
    variants: list[Variant] = []
    clean: list[Item] = []
    lines: dict[str, int] = {}
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
            if variant.spec == CLEAN:
                clean.append(variant.item)
            else:
                variants.append(variant)
                lines.setdefault(variant.item.id, lineno)
    if not variants:
        raise DataError("the variants file holds no perturbed variants", path=display)
    return FrozenVariants(display, variants, clean, lines)


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
    for variant in frozen.variants:
        if variant.item.id not in known:
            raise DataError(f"variant of item {variant.item.id!r} has no clean item in "
                            f"{source}; pass the data the variants were made from with "
                            f"--data", path=frozen.path, line=frozen.lines[variant.item.id],
                            field="item_id")
    return list(items)
