"""perturb_items: the same variants, in the same order, whatever the number of workers."""

from __future__ import annotations

import itertools
import resource
import time

import pytest

from perturbations import Item, perturb, perturb_items
from perturbations.errors import ConfigError

WORDS = ("please tell me what the capital of france is and why it matters to people "
         "who travel there often for work").split()


def _items(n: int) -> list[Item]:
    return [Item(id=f"q{i:03d}", input=" ".join(WORDS[i % 7:i % 7 + 9 + i % 5]) + "?",
                 target="Paris") for i in range(n)]


SPECS = ["typos", "slang@high", "truncation@0.4", "whitespace+casing@medium"]


def test_two_workers_and_small_chunks_give_identical_bytes():
    items = _items(45)
    one = [v.to_json() for v in perturb_items(items, SPECS, seed=7, replicates=2)]
    two = [v.to_json() for v in perturb_items(items, SPECS, seed=7, replicates=2, workers=2,
                                              chunk_size=4)]
    # typos expands to three severities: (3 + 1 + 1 + 1) specs x 2 replicates per item
    assert len(one) == 45 * 6 * 2
    assert one == two
    # item order, then spec, then replicate; each equals the single-variant call
    first = perturb_items(items[:1], ["typos@low"], seed=7, replicates=2)
    assert [v.to_json() for v in first] == one[:2]
    assert one[0] == perturb(items[0], "typos@low", seed=7, replicate=0).to_json()


def _child_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)  # workers, once the pool is shut
    return used.ru_utime + used.ru_stime


def test_a_parallel_stream_reads_only_a_few_chunks_ahead_of_its_consumer():
    """A slow consumer: the pool must not perturb everything into memory meanwhile."""
    items = _items(4000)
    specs = ["typos@0.3", "typos@0.6", "slang@high", "whitespace+casing@medium"]
    before = _child_cpu()
    assert sum(1 for _ in perturb_items(items, specs, seed=1, workers=2, chunk_size=10)) \
        == 16000
    everything = _child_cpu() - before

    before = _child_cpu()
    stream = perturb_items(items, specs, seed=1, workers=2, chunk_size=10)
    head = list(itertools.islice(stream, 5))
    time.sleep(1.5)  # long enough for the workers to do all 400 chunks if allowed
    stream.close()
    ahead = _child_cpu() - before
    assert [v.item.id for v in head] == ["q000"] * 4 + ["q001"]
    # submitting every chunk up front (pool.map) made this equal to `everything`
    assert ahead < everything / 3, (ahead, everything)


def test_replicates_below_one_are_refused():
    with pytest.raises(ConfigError, match="replicates must be at least 1"):
        list(perturb_items(_items(2), ["typos"], replicates=0))
