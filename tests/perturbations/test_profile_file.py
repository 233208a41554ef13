"""Profile files: the YAML format, its errors, ``profile:PATH`` specs and their severities."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from perturbations import (ConfigError, DataError, Item, expand_specs, parse_spec, perturb,
                           perturb_items)
from perturbations.realism import FittedPart, load_profile
from perturbations.spec import FITTED_SEVERITY
from perturbations.transforms.profile_file import REFERENCE_PROFILE, scaled

ROOT = Path(__file__).resolve().parents[2]
ITEMS = [Item(id=f"i{i}", input=t, target="x") for i, t in enumerate([
    "Hello, what is the capital of France? I need it for my homework.",
    "I was charged twice for my subscription and I would like a refund.",
    "Can you tell me how many legs a spider has?",
    "Why does my phone battery drain so fast, even when I am not using it?",
])]


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


GOOD = """robustify_profile: 1
name: demo
parts:
  - {transform: typos, options: {kind: keyboard}, severity: 0.2, share: 1.0}
  - {transform: casing, options: {mode: lower}, severity: 1.0, share: 0.5}
"""


def test_round_trip_yaml_and_json(tmp_path: Path) -> None:
    prof = load_profile(write(tmp_path, GOOD))
    assert prof.name == "demo" and len(prof.parts) == 2
    assert prof.parts[1] == FittedPart("casing", {"mode": "lower"}, 1.0, 0.5)
    for suffix in (".yaml", ".json"):
        saved = prof.save(tmp_path / f"again{suffix}")
        assert load_profile(saved) == prof
    assert load_profile(REFERENCE_PROFILE).target is not None


@pytest.mark.parametrize("text,field", [
    ("robustify_profile: 2\nparts: []\n", "robustify_profile"),
    ("robustify_profile: 1\nparts: []\n", "parts"),
    ("robustify_profile: 1\nparts:\n  - {transform: typoz, severity: 0.1}\n", "parts[0].transform"),
    ("robustify_profile: 1\nparts:\n  - {transform: mobile_typing, severity: 0.1}\n",
     "parts[0].transform"),
    ("robustify_profile: 1\nparts:\n  - {transform: typos, severity: 1.5}\n", "parts[0].severity"),
    ("robustify_profile: 1\nparts:\n  - {transform: typos, severity: 0.1, share: -1}\n",
     "parts[0].share"),
    ("robustify_profile: 1\nparts:\n  - {transform: typos, options: {kind: fat}, severity: 0.1}\n",
     "parts[0].options"),
    ("robustify_profile: 1\nparts:\n  - {transform: typos, severity: 0.1, sev: 2}\n",
     "parts[0].sev"),
    ("robustify_profile: 1\nextra: 1\nparts:\n  - {transform: typos, severity: 0.1}\n", "extra"),
    ("robustify_profile: 1\nseed: x\nparts:\n  - {transform: typos, severity: 0.1}\n", "seed"),
])
def test_errors_name_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DataError) as info:
        load_profile(path)
    assert info.value.field == field and info.value.path == path
    assert path in str(info.value)


def test_anchors_aliases_and_bad_yaml_are_refused(tmp_path: Path) -> None:
    aliased = ("robustify_profile: 1\nparts:\n  - &p {transform: typos, severity: 0.1}\n"
               "  - *p\n")
    with pytest.raises(DataError, match="anchors and aliases") as info:
        load_profile(write(tmp_path, aliased))
    assert info.value.line == 3
    with pytest.raises(DataError, match="invalid YAML"):
        load_profile(write(tmp_path, "parts: [\n", "bad.yaml"))
    with pytest.raises(DataError, match="not found"):
        load_profile(tmp_path / "missing.yaml")


def test_spec_parsing_of_paths(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD, "my.profile.v1.yaml")
    spec = parse_spec(f"profile:{path}")
    assert str(spec) == f"profile:{path}@fitted" and spec.severity == FITTED_SEVERITY
    assert spec.fitted_default and spec.severity_label == "fitted"
    assert parse_spec(str(spec)) == spec                      # the canonical form parses back
    assert parse_spec(f"profile:path={path}@0.1") == spec     # and so does key=value
    high = parse_spec(f"profile:{path}@high")
    assert high.severity == 0.8 and not high.fitted_default and high.severity_label == "high"
    assert str(parse_spec(f"slang+profile:{path}@low")) == f"slang+profile:{path}@0.2"
    assert parse_spec(f"profile:{path}@fitted").severity == FITTED_SEVERITY
    with pytest.raises(DataError, match="not found"):
        parse_spec("profile:nowhere/x.yaml")
    with pytest.raises(ConfigError):
        parse_spec(f"profile:{path}@2")


def test_without_severity_one_variant_with_levels_a_scaled_fit(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    spec = parse_spec(f"profile:{path}")
    assert [str(s) for s in expand_specs([spec])] == [str(spec)]          # one variant per item
    levels = [spec.with_severity(*lv) for lv in ((0.2, "low"), (0.8, "high"))]
    assert [s.severity for s in levels] == [0.2, 0.8]
    assert scaled(0.3, FITTED_SEVERITY) == pytest.approx(0.3)
    assert scaled(0.3, 0.2) == pytest.approx(0.6) and scaled(0.3, 0.8) == 1.0
    fitted = [perturb(it, spec, seed=1).item.input for it in ITEMS]
    assert fitted == [perturb(it, f"profile:{path}@fitted", seed=1).item.input for it in ITEMS]
    assert perturb(ITEMS[0], f"profile:{path}@0", seed=1).item == ITEMS[0]


def test_dropping_a_part_keeps_the_other_parts_noise(tmp_path: Path) -> None:
    import random

    from perturbations.transforms.profile_file import run_parts

    both = load_profile(write(tmp_path, GOOD, "both.yaml"))
    only = load_profile(write(tmp_path, GOOD.split("  - {transform: casing")[0], "only.yaml"))
    typoed = 0
    for it in ITEMS:  # the typos part draws the same noise with or without the casing part
        x = run_parts(it, both.parts, 0.1, random.Random(it.id)).input
        y = run_parts(it, only.parts, 0.1, random.Random(it.id)).input
        assert x.lower() == y.lower()
        typoed += y != it.input
    assert typoed


def test_label_policy_comes_from_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("casing, options: {mode: lower}",
                                        "truncation, options: {mode: tail}"))
    v = perturb(ITEMS[0], f"profile:{path}", seed=0)
    assert v.label_policy == "may_break"
    assert parse_spec(f"profile:{write(tmp_path, GOOD, 'g.yaml')}").label_policy == "preserves"


def test_independent_of_order_workers_and_hashseed(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    spec = f"profile:{path}"
    one = [v.to_dict() for v in perturb_items(ITEMS, [spec], seed=5)]
    rev = [v.to_dict() for v in perturb_items(ITEMS[::-1], [spec], seed=5)][::-1]
    assert one == rev
    script = ("import json,sys; sys.path.insert(0, %r); from perturbations import perturb, Item;"
              "print(json.dumps([perturb(Item(id='a', input='Hello, what is the capital of "
              "France?', target='x'), %r, seed=s).item.input for s in range(8)]))"
              % (str(ROOT), spec))
    outs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           env={**os.environ, "PYTHONHASHSEED": h}, check=True).stdout
            for h in ("1", "99")}
    assert len(outs) == 1 and json.loads(outs.pop())
