"""A million items on one machine: variants are streamed, never listed, and prompts planned compactly.

* ``perturb`` writes its file while the variants are drawn: at most a couple of variants
  are alive at once, whatever the count.
* planning reads a generator once and keeps no variant (nor its item, for changed ones).
* a frozen variants file is checked in one pass keeping per-item facts only, and read
  again, streamed, when asked.
* the packed prompt keys (spilled to a temporary file) and their index give exactly the
  groups a dict would.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import subprocess
import sys
import textwrap
import weakref
from pathlib import Path
from typing import Any, Iterator

import pytest

from perturbations.errors import DataError
from perturbations.records import Item, Variant
from robustify.models import parse_model_spec
from robustify.runner.plan import plan_rows
from robustify.runner.prompt_keys import KeyArray, KeyIndex

ROOT = Path(__file__).resolve().parents[2]


def build_messages(item: Item) -> list[dict[str, str]]:
    return [{"role": "user", "content": item.input}]


class Watched:
    """A stream of variants that records how many it handed out are still alive."""

    def __init__(self, items: list[Item], per_item: int) -> None:
        self.items = items
        self.per_item = per_item
        self.refs: list[weakref.ref] = []
        self.max_alive = 0
        self.yielded = 0

    def __iter__(self) -> Iterator[Variant]:
        for item in self.items:
            yield self._watch(Variant.clean(item))
        for item in self.items:
            for r in range(self.per_item):
                changed = r % 3 != 0  # every third variant is unchanged (reuses the clean answer)
                own = dataclasses.replace(item, input=f"{item.input} v{r}") if changed else item
                yield self._watch(Variant(
                    item=own, spec=f"caps@0.{r % 9 + 1}", transform="caps", severity=0.5,
                    seed=0, replicate=r, changed=changed, edit_rate=0.1 if changed else 0.0,
                    label_policy="preserves", severity_label="medium"))

    def _watch(self, variant: Variant) -> Variant:
        alive = sum(ref() is not None for ref in self.refs[-64:])
        self.max_alive = max(self.max_alive, alive)
        self.refs.append(weakref.ref(variant))
        self.yielded += 1
        return variant


def make_items(n: int) -> list[Item]:
    return [Item(id=f"q{i}", input=f"question number {i}?", target="A") for i in range(n)]


def test_planning_reads_a_generator_once_and_keeps_no_variant() -> None:
    backend = parse_model_spec("python:tests.robustify.e2e_models:oracle")
    stream = Watched(make_items(200), per_item=12)
    plans, groups, rows, reused = plan_rows(iter(stream), [backend], build_messages)
    assert rows == stream.yielded == 200 * 13
    # every variant was dropped before the next one was read (the one in hand is alive)
    assert stream.max_alive <= 1
    assert all(ref() is None for ref in stream.refs)
    # clean rows, then 8 changed variants per item are distinct prompts; 4 reuse the clean
    assert len(groups) == 200 * 9 == len(plans[0].keys)
    assert reused == 200 * 4
    # an unchanged variant joins its clean original's group, after it
    assert groups.rows(0) == [0] + [200 + r for r in range(0, 12, 3)]
    assert groups.rows(1) == [1] + [212 + r for r in range(0, 12, 3)]
    assert groups.rows(200) == [201]  # the first changed variant: its own prompt


def test_perturb_writes_while_drawing_and_holds_no_list(tmp_path: Path, monkeypatch,
                                                         capsys) -> None:
    import robustify.cli.perturb as perturb_cli
    from robustify.cli import main

    data = tmp_path / "items.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "input": f"question {i}?",
                                        "target": "x"}) + "\n" for i in range(50)))
    streams: list[Watched] = []
    written_midway: list[int] = []

    def fake_perturb_items(items: list[Item], specs: Any, **kwargs: Any) -> Iterator[Variant]:
        stream = Watched(list(items), per_item=40)
        streams.append(stream)
        for n, variant in enumerate(v for v in stream if not v.is_clean):
            if n == 1500:  # the file is being written while variants are still drawn
                written_midway.extend(len(p.read_bytes().splitlines())
                                      for p in tmp_path.glob(".robustify-tmp.v.jsonl.*"))
            yield variant

    monkeypatch.setattr(perturb_cli, "perturb_items", fake_perturb_items)
    out = tmp_path / "v.jsonl"
    assert main(["perturb", "--data", str(data), "--transforms", "typos",
                 "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 50 * 40
    assert streams[0].max_alive <= 1
    assert written_midway == [1000]  # one chunk of lines already on disk at 1,500
    assert not list(tmp_path.glob(".robustify-tmp.*"))
    assert Variant.from_dict(json.loads(lines[-2])).item.input == "question 49? v38"
    assert sum(json.loads(line)["changed"] for line in lines) == 50 * 26
    assert (f"wrote 2000 variants of 50 items to {out} (1300 changed, 700 unchanged)"
            in capsys.readouterr().err)


def _variants_file(path: Path, n_items: int, per_item: int) -> None:
    with path.open("w") as fh:
        for item in make_items(n_items):
            fh.write(Variant.clean(item).to_json() + "\n")
        for variant in Watched(make_items(n_items), per_item):
            if not variant.is_clean:
                fh.write(variant.to_json() + "\n")


def test_a_frozen_file_is_checked_without_holding_its_variants(tmp_path: Path) -> None:
    from robustify.data.variants_file import read_variants

    small, big = tmp_path / "small.jsonl", tmp_path / "big.jsonl"
    _variants_file(small, 20, 5)
    _variants_file(big, 20, 80)
    code = textwrap.dedent("""
        import sys, tracemalloc
        from robustify.data.variants_file import read_variants
        read_variants(sys.argv[1])  # warm: imports and caches out of the measure
        tracemalloc.start()
        frozen = read_variants(sys.argv[1])
        print(tracemalloc.get_traced_memory()[0])
    """)
    held = []
    for path in (small, big):
        proc = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT,
                              capture_output=True, text=True, timeout=120,
                              env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
        assert proc.returncode == 0, proc.stderr
        held.append(int(proc.stdout.strip()))
    # 16 x the variants, same items: what stays is per item (well under 1 KB per extra
    # variant; a Variant with its Item alone is over 1 KB)
    assert held[1] - held[0] < 1500 * 20, held

    frozen = read_variants(big)
    assert len(frozen) == 20 * 80 and frozen.specs[0] == "caps@0.1"
    again = list(frozen)
    assert len(again) == 1600 and again[5].item.input == "question number 0? v5"
    only = frozen.only({"q3"})
    assert len(only) == 80 and {v.item.id for v in only} == {"q3"}


def test_a_frozen_file_changed_after_the_check_is_refused(tmp_path: Path) -> None:
    from robustify.data.variants_file import read_variants

    path = tmp_path / "v.jsonl"
    _variants_file(path, 3, 2)
    frozen = read_variants(path)
    with path.open("a") as fh:
        fh.write(next(iter(frozen)).to_json() + "\n")
    with pytest.raises(DataError, match="changed since it was checked"):
        list(frozen)


def _key(i: int) -> bytes:
    return hashlib.sha256(b"%d" % i).digest()


def test_packed_keys_spill_to_a_file_and_read_back_exactly() -> None:
    keys = KeyArray(spill=100)
    wanted = [_key(i) for i in range(1000)]
    for key in wanted:
        keys.append(key)
    assert keys.spilled and len(keys) == 1000
    assert keys[0] == wanted[0] and keys[999] == wanted[999] and keys[-2] == wanted[-2]
    assert keys[90:110] == wanted[90:110]  # across the file and the memory buffer
    assert keys[::250] == wanted[::250]
    assert list(keys) == wanted
    with pytest.raises(IndexError):
        keys[1000]
    keys.close()
    assert len(keys) == 0


def test_the_key_index_groups_exactly_like_a_dict(monkeypatch) -> None:
    import robustify.runner.prompt_keys as prompt_keys

    monkeypatch.setattr(prompt_keys, "_GROW_BLOCK", 64)  # regrow block by block
    rng = random.Random(7)
    stream = [_key(rng.randrange(3000)) for _ in range(10_000)]
    # same fingerprint (first 8 bytes), different key: must stay apart
    twin = stream[0][:8] + bytes(24)
    stream += [twin, stream[0], twin]
    index = KeyIndex(KeyArray(spill=500))
    expected: dict[bytes, int] = {}
    for key in stream:
        group, new = index.find_or_add(key)
        if key in expected:
            assert (group, new) == (expected[key], False)
        else:
            expected[key] = len(expected)
            assert (group, new) == (expected[key], True)
    assert list(index.keys) == list(expected)
