"""A job over a frozen variants file (``run --variants FILE``): its clean items and variants.

The clean originals are the file's own ``clean`` rows (a run's ``variants.jsonl``) or,
for a ``perturb`` file, the job's data; ``limit`` samples the clean items as usual and
keeps their variants. The job takes the file's seed (when it has one) and its specs.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from perturbations import Item

from robustify.data.loaders import choose_items
from robustify.data.variants_file import FrozenVariants, pair_variants, read_variants
from robustify.pipeline.jobfile import DataSource, JobConfig

__all__ = ["load_frozen"]


def load_frozen(job: JobConfig, load_data: Callable[[JobConfig], list[Item]]
                ) -> tuple[JobConfig, list[Item], FrozenVariants]:
    """Read ``job.variants`` and pair it with its clean items.

    Returns:
        The job with ``transforms`` set to the file's specs, the clean items and the
        variants to ask (both cut to ``job.limit`` items; the variants are streamed from
        the file each time they are iterated).

    Raises:
        DataError: an unreadable file, or a variant whose item has no clean original.
    """
    assert job.variants is not None
    frozen = read_variants(job.variants)
    if frozen.clean:
        items = pair_variants(frozen, frozen.clean, source="the file's clean rows")
    else:
        source = ", ".join(d.path for d in job.data)
        items = pair_variants(frozen, load_data(dataclasses.replace(job, limit=None)),
                              source=source)
    variants = frozen
    seeds = set(frozen.seeds)
    if len(seeds) == 1:  # the file's seed: clean rows, the --limit sample and the bootstrap
        job = dataclasses.replace(job, seed=seeds.pop())
    if job.limit is not None:
        items = choose_items(items, job.limit, job.seed)
        kept = {item.id for item in items}
        variants = frozen.only(kept)
    else:
        used = frozen.lines
        items = [item for item in items if item.id in used]
    changes: dict = {"transforms": tuple(frozen.specs), "severity": None}
    if frozen.clean:  # the manifest says where the clean items really came from
        changes["data"] = (DataSource(path=frozen.path),)
    job = dataclasses.replace(job, **changes)
    return job, items, variants
