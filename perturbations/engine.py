"""Drawing variants: the per-variant RNG, one item at a time, or a whole data set.

Determinism rests on :func:`variant_rng`: every variant gets its own
``random.Random`` seeded from a separated string of (seed, spec, severity, replicate,
item id). CPython seeds ``Random(str)`` through SHA-512, so the stream does not depend
on ``PYTHONHASHSEED``, item order, threads or processes, and no global RNG is read or
written. Composed specs give each part its own stream (the part index is appended),
so adding a part never shifts the noise of the others.
"""

from __future__ import annotations

import collections
import itertools
import os
import random
from concurrent.futures import ProcessPoolExecutor
from typing import Iterable, Iterator, Sequence

from .errors import ConfigError
from .records import Item, Variant
from .spec import TransformSpec, format_severity, parse_severity, parse_spec
from .text import edit_rate
from .version import __version__

__all__ = ["variant_rng", "perturb", "perturb_items", "expand_specs"]


def variant_rng(seed: int, spec: str, severity: float, replicate: int, item_id: str,
                part: int | None = None) -> random.Random:
    """The one RNG a transform may use for this variant (or for one part of it)."""
    key = f"{seed}\x1f{spec}\x1f{format_severity(severity)}\x1f{replicate}\x1f{item_id}"
    if part is not None:
        key += f"\x1f{part}"
    return random.Random(key)


def _changed_text(item: Item) -> str:
    parts = [item.input, item.context or ""]
    parts += list(item.choices or ())
    return "\x1e".join(parts)


def perturb(item: Item, spec: TransformSpec | str, *, seed: int = 0, replicate: int = 0,
            severity: float | str | None = None) -> Variant:
    """Draw one variant of ``item``.

    Args:
        item: The clean item (never mutated).
        spec: A parsed spec or a spec string.
        seed: Run seed.
        replicate: Replicate index; different replicates are independent draws.
        severity: Default severity for parts of ``spec`` that carry none
            (a number in [0, 1] or low/medium/high). Required if the spec has none.
    """
    if isinstance(spec, str):
        spec = parse_spec(spec)
    if severity is not None:
        value, label = parse_severity(severity)
        spec = spec.with_default_severity(value, label)
    if spec.severity is None:
        spec = spec.with_default_severity(*parse_severity("medium"))
    canonical = str(spec)
    out = item
    for index, part in enumerate(spec.parts):
        transform = part.build()
        assert part.severity is not None
        rng = variant_rng(seed, canonical, spec.severity, replicate, item.id,
                          part=index if len(spec.parts) > 1 else None)
        out = transform.apply(out, part.severity, rng)
    if out.id != item.id:
        raise AssertionError(f"transform {spec.transform!r} changed the item id")
    changed = out != item
    return Variant(
        item=out,
        spec=canonical,
        transform=spec.transform,
        severity=float(spec.severity),
        seed=seed,
        replicate=replicate,
        changed=changed,
        edit_rate=round(edit_rate(_changed_text(item), _changed_text(out)), 6) if changed else 0.0,
        label_policy=spec.label_policy,
        severity_label=spec.severity_label,
        version=__version__,
    )


def expand_specs(specs: Iterable[TransformSpec | str],
                 severities: Sequence[float | str] = ("low", "medium", "high")
                 ) -> list[TransformSpec]:
    """Cross specs with severities; a spec with its own severity is kept as is."""
    out: list[TransformSpec] = []
    seen: set[str] = set()
    for spec in specs:
        if isinstance(spec, str):
            spec = parse_spec(spec)
        if spec.severity is not None:
            candidates = [spec]
        else:
            candidates = [spec.with_default_severity(*parse_severity(s)) for s in severities]
        for c in candidates:
            if str(c) not in seen:
                seen.add(str(c))
                out.append(c)
    return out


def _chunk(args: tuple[list[Item], list[str], int, int]) -> list[Variant]:
    items, specs, seed, replicates = args
    parsed = [parse_spec(s) for s in specs]
    return [perturb(item, spec, seed=seed, replicate=r)
            for item in items for spec in parsed for r in range(replicates)]


def perturb_items(items: Sequence[Item], specs: Sequence[TransformSpec | str], *,
                  severities: Sequence[float | str] = ("low", "medium", "high"),
                  seed: int = 0, replicates: int = 1, workers: int = 1,
                  chunk_size: int = 500) -> Iterator[Variant]:
    """Yield every variant of every item, in item order, then spec, then replicate.

    The output is identical for any ``workers``: each variant depends only on its own
    (seed, spec, severity, replicate, item id).
    """
    if replicates < 1:
        raise ConfigError(f"replicates must be at least 1, got {replicates}")
    expanded = [str(s) for s in expand_specs(specs, severities)]
    chunks = [(list(items[i:i + chunk_size]), expanded, seed, replicates)
              for i in range(0, len(items), chunk_size)]
    if workers <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            yield from _chunk(chunk)
        return
    workers = min(workers, os.cpu_count() or 1, len(chunks))
    # At most two chunks per worker are submitted ahead, so variants do not pile up in
    # memory when the consumer is slower than the pool.
    todo = iter(chunks)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending = collections.deque(pool.submit(_chunk, c)
                                    for c in itertools.islice(todo, 2 * workers))
        try:
            while pending:
                result = pending.popleft().result()
                following = next(todo, None)
                if following is not None:
                    pending.append(pool.submit(_chunk, following))
                yield from result
        finally:
            for future in pending:  # closed early: do not compute what nobody reads
                future.cancel()
