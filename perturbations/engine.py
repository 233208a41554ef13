"""Drawing variants: the per-variant RNG, one item at a time, or a whole data set.

Determinism rests on :func:`variant_rng`: every variant gets its own
``random.Random`` seeded from a separated string of (seed, spec, severity, replicate,
item id). CPython seeds ``Random(str)`` through SHA-512, so the stream does not depend
on ``PYTHONHASHSEED``, item order, threads or processes, and no global RNG is read or
written. Composed specs give each part its own stream (the part index is appended),
so adding a part never shifts the noise of the others.

Every draw passes the guard (:func:`perturbations.guard.check_variant`) before it
becomes a variant. A draw that breaks it is redrawn with the attempt number appended
to the RNG key (the first draw keeps the plain key, so variants that pass are the
ones drawn before the guard existed), at most :data:`MAX_REDRAWS` times; if every
draw breaks it the variant is marked ``dropped`` and :func:`perturb_items` leaves it
out (counted by a :class:`~perturbations.tally.VariantTally`). A variant that came out
unchanged records why (:meth:`~perturbations.base.Transform.cannot_apply`), and the
first time a transform cannot apply to a task kind it says so once in the log.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import random
import threading
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

from .base import Transform, keep_spans
from .errors import ConfigError
from .guard import check_variant
from .records import FIELDS, Item, Variant, field_text
from .spec import TransformSpec, format_severity, parse_severity, parse_spec
from .text import field_edit
from .version import __version__

if TYPE_CHECKING:
    from .tally import VariantTally

__all__ = ["variant_rng", "perturb", "perturb_items", "expand_specs", "MAX_REDRAWS"]

log = logging.getLogger(__name__)

MAX_REDRAWS = 4
"""Redraws after a draw that breaks the guard; then the variant is dropped."""
MAX_RECORDED_VIOLATIONS = 12
"""At most this many violation strings are kept on a variant."""

_said: set[tuple[str, str, str]] = set()
_said_lock = threading.Lock()


def variant_rng(seed: int, spec: str, severity: float, replicate: int, item_id: str,
                part: int | None = None, attempt: int = 0) -> random.Random:
    """The one RNG a transform may use for this variant (or for one part of it).

    ``attempt`` > 0 is a redraw after the guard rejected the earlier draws; attempt 0
    keeps the key variants have always had.
    """
    key = f"{seed}\x1f{spec}\x1f{format_severity(severity)}\x1f{replicate}\x1f{item_id}"
    if part is not None:
        key += f"\x1f{part}"
    if attempt:
        key += f"\x1fredraw{attempt}"
    return random.Random(key)


def _draw(item: Item, spec: TransformSpec, transforms: Sequence[Transform], seed: int,
          replicate: int, attempt: int) -> tuple[Item, list[tuple[Transform, Item, float]]]:
    """One draw of every part; also (transform, its input, severity) per unchanged part."""
    canonical = str(spec)
    out = item
    idle: list[tuple[Transform, Item, float]] = []
    for index, (part, transform) in enumerate(zip(spec.parts, transforms)):
        assert part.severity is not None
        rng = variant_rng(seed, canonical, spec.severity, replicate, item.id,
                          part=index if len(spec.parts) > 1 else None, attempt=attempt)
        before = out
        out = transform.apply(out, part.severity, rng)
        if out == before and part.severity > 0:  # severity 0 is the identity: no reason
            idle.append((transform, before, part.severity))
    if out.id != item.id:
        raise AssertionError(f"transform {spec.transform!r} changed the item id")
    return out, idle


def _field_edits(clean: Item, out: Item) -> dict[str, dict[str, float | int]]:
    edits = {}
    for name in FIELDS:
        before, after = field_text(clean, name), field_text(out, name)
        if name == "input" or before != after:
            edits[name] = field_edit(before, after, keep_spans(before, clean, name))
    return edits


def _say_once(transform: Transform, task: str, reason: str) -> None:
    # INFO, once per transform and reason: a whole run's counts per transform are in
    # VariantTally.rows() ("cannot_apply", "skip_reasons"), which the CLI summary and the
    # report state once, with numbers; a warning per task kind here would only repeat it.
    key = (transform.name, reason)
    with _said_lock:
        if key in _said:
            return
        _said.add(key)
    log.info("%s cannot apply to some items (%s, first seen on a %s item); their variants "
             "are unchanged (Variant.skip_reason)", transform.name, reason, task)


def perturb(item: Item, spec: TransformSpec | str, *, seed: int = 0, replicate: int = 0,
            severity: float | str | None = None, guard: bool = True) -> Variant:
    """Draw one variant of ``item``, checked by the guard.

    Args:
        item: The clean item (never mutated).
        spec: A parsed spec or a spec string.
        seed: Run seed.
        replicate: Replicate index; different replicates are independent draws.
        severity: Default severity for parts of ``spec`` that carry none
            (a number in [0, 1] or low/medium/high). Required if the spec has none.
        guard: Check the draw against its label policy and redraw (at most
            :data:`MAX_REDRAWS` times) until it passes; a variant that never passes is
            returned with ``guard == "dropped"`` (its item is the last draw) and must not
            be asked. ``False`` returns the first draw unchecked.
    """
    if isinstance(spec, str):
        spec = parse_spec(spec)
    if severity is not None:
        value, label = parse_severity(severity)
        spec = spec.with_default_severity(value, label)
    if spec.severity is None:
        spec = spec.with_default_severity(*parse_severity("medium"))
    transforms = [part.build() for part in spec.parts]
    policy = spec.label_policy
    rejected: list[str] = []
    status = "unchecked"
    for attempt in range(MAX_REDRAWS + 1 if guard else 1):
        out, idle = _draw(item, spec, transforms, seed, replicate, attempt)
        if not guard:
            break
        violations = check_variant(item, out, policy)
        if not violations:
            status = "passed" if attempt == 0 else "redrawn"
            break
        rejected += [str(v) for v in violations if str(v) not in rejected]
        status = "dropped"
    changed = out != item
    skip_reason = None
    if not changed:
        for transform, before, part_severity in idle:
            skip_reason = transform.cannot_apply(before, part_severity)
            if skip_reason:
                _say_once(transform, item.task, skip_reason)
                break
    notes: list[str] = []
    for part, transform in zip(spec.parts, transforms):
        notes += [n for n in transform.notes(item, part.severity or 0.0) if n not in notes]
    edits = _field_edits(item, out)
    primary = next((name for name in FIELDS if edits.get(name, {}).get("chars")), "input")
    return Variant(
        item=out,
        spec=str(spec),
        transform=spec.transform,
        severity=float(spec.severity),
        seed=seed,
        replicate=replicate,
        changed=changed,
        edit_rate=float(edits[primary]["chars"]) if changed else 0.0,
        label_policy=policy,
        severity_label=spec.severity_label,
        version=__version__,
        guard=status,
        guard_redraws=attempt,
        guard_violations=tuple(rejected[:MAX_RECORDED_VIOLATIONS]),
        skip_reason=skip_reason,
        notes=tuple(notes),
        field_edits=edits,
        nominal_word_rate=transforms[0].nominal_word_rate(spec.parts[0].severity or 0.0)
        if len(transforms) == 1 else None,
    )


DEFAULT_SEVERITIES = ("low", "medium", "high")
"""Severities for specs without one when the caller names none."""


def expand_specs(specs: Iterable[TransformSpec | str],
                 severities: Sequence[float | str] | None = None) -> list[TransformSpec]:
    """Cross specs with severities; a spec with its own severity is kept as is.

    Args:
        specs: Parsed specs or spec strings.
        severities: Levels for specs without one. ``None`` means the defaults
            (:data:`DEFAULT_SEVERITIES`), and a fitted profile (``profile:FILE`` without a
            severity) then stays one spec at its fitted level, reproducing the traffic it
            was fitted to; an explicit list also expands a fitted profile, each level
            scaling the fit as stress.
    """
    explicit = severities is not None
    levels = list(severities) if severities is not None else list(DEFAULT_SEVERITIES)
    out: list[TransformSpec] = []
    seen: set[str] = set()
    for spec in specs:
        if isinstance(spec, str):
            spec = parse_spec(spec)
        if spec.fitted_default and explicit:
            candidates = [spec.with_severity(*parse_severity(s)) for s in levels]
        elif spec.severity is not None:
            candidates = [spec]
        else:
            candidates = [spec.with_default_severity(*parse_severity(s)) for s in levels]
        for c in candidates:
            if str(c) not in seen:
                seen.add(str(c))
                out.append(c)
    return out


def _chunk(args: tuple[list[Item], list[str], int, int, bool]) -> list[Variant]:
    return list(_draw_chunk(args))


def _draw_chunk(args: tuple[list[Item], list[str], int, int, bool]) -> Iterator[Variant]:
    """One chunk's variants, one at a time (a consumer can interleave other work)."""
    items, specs, seed, replicates, guard = args
    parsed = [parse_spec(s) for s in specs]
    for item in items:
        for spec in parsed:
            for r in range(replicates):
                yield perturb(item, spec, seed=seed, replicate=r, guard=guard)


def perturb_items(items: Sequence[Item], specs: Sequence[TransformSpec | str], *,
                  severities: Sequence[float | str] | None = None,
                  seed: int = 0, replicates: int = 1, workers: int = 1,
                  chunk_size: int = 500, guard: bool = True, include_dropped: bool = False,
                  tally: "VariantTally | None" = None) -> Iterator[Variant]:
    """Yield every variant of every item, in item order, then spec, then replicate.

    The output is identical for any ``workers``: each variant depends only on its own
    (seed, spec, severity, replicate, item id).

    Args:
        guard: Check every variant (see :func:`perturb`).
        include_dropped: Also yield the variants the guard dropped (``v.dropped``); by
            default they are left out so that nobody asks them.
        tally: Counts every variant drawn, dropped ones included: kept, redrawn and
            dropped, unchanged share, skip reasons and edit rates per spec.
    """
    if replicates < 1:
        raise ConfigError(f"replicates must be at least 1, got {replicates}")
    for variant in _draw_all(items, specs, severities, seed, replicates, workers,
                             chunk_size, guard):
        if tally is not None:
            tally.add(variant)
        if include_dropped or not variant.dropped:
            yield variant


def _draw_all(items: Sequence[Item], specs: Sequence[TransformSpec | str],
              severities: Sequence[float | str] | None, seed: int, replicates: int, workers: int,
              chunk_size: int, guard: bool) -> Iterator[Variant]:
    expanded = [str(s) for s in expand_specs(specs, severities)]
    chunks = [(list(items[i:i + chunk_size]), expanded, seed, replicates, guard)
              for i in range(0, len(items), chunk_size)]
    if workers <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            yield from _draw_chunk(chunk)
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
