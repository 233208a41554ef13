"""profiles: each part applied in order at its scaled severity with its own RNG."""

from __future__ import annotations

import dataclasses
import random
import re

import pytest

from perturbations import Item, Transform, get_transform, perturb, transform_names
from perturbations.errors import UnknownNameError
from perturbations.transforms import profiles
from perturbations.transforms.profiles import Part, Profile, part_rng, strictest_policy

ITEM = Item(id="p", input="Hello, What is the capital of France? Their answer is wrong.",
            target="Paris")
PROFILES = [n for n in transform_names()
            if get_transform(n).family == "profile" and hasattr(get_transform(n), "PARTS")]


class _Recorder(Transform):
    """Appends "[name@severity:draw]" to the input and logs the call."""

    calls: list = []

    def __init__(self, tag: str, **options) -> None:
        self.tag = tag
        self.options = options

    def apply(self, item, severity, rng):
        draw = rng.random()
        self.calls.append((self.tag, round(severity, 6), dict(self.options), draw))
        return dataclasses.replace(item, input=f"{item.input} [{self.tag}]")


@pytest.fixture
def recorded(monkeypatch):
    _Recorder.calls = []
    monkeypatch.setattr(profiles, "get_transform",
                        lambda name: (lambda **o: _Recorder(name, **o)))
    return _Recorder.calls


class _Demo(Profile):
    """Demo profile.

    Severity: scaled.
    Label: preserves.
    """

    PARTS = (Part("alpha", {"k": "v"}, 1.0), Part("beta", {}, 0.5), Part("gamma", {}, 2.0))


def test_parts_run_in_order_with_scaled_capped_severity(recorded) -> None:
    out = _Demo().apply(ITEM, 0.6, random.Random(1))
    assert out.input == ITEM.input + " [alpha] [beta] [gamma]"
    assert [(c[0], c[1], c[2]) for c in recorded] == [
        ("alpha", 0.6, {"k": "v"}), ("beta", 0.3, {}), ("gamma", 1.0, {})]


def test_each_part_has_its_own_rng_derived_from_the_given_one(recorded) -> None:
    _Demo().apply(ITEM, 0.6, random.Random(1))
    first = [c[3] for c in recorded]
    recorded.clear()
    _Demo().apply(ITEM, 0.6, random.Random(1))
    assert [c[3] for c in recorded] == first  # deterministic
    assert len(set(first)) == 3  # independent streams
    recorded.clear()
    _Demo().apply(ITEM, 0.6, random.Random(2))
    assert [c[3] for c in recorded] != first
    parent = random.Random(1)
    expected = [part_rng(parent, i).random() for i in range(3)]
    assert first == expected


def test_severity_zero_is_identity_without_building_parts(recorded) -> None:
    assert _Demo().apply(ITEM, 0.0, random.Random(0)) is ITEM
    assert recorded == []


def test_strictest_policy() -> None:
    assert strictest_policy(["preserves", "may_break", "remaps"]) == "may_break"
    assert strictest_policy(["preserves", "remaps"]) == "remaps"
    assert strictest_policy([]) == "preserves"


def test_expected_profiles_are_registered() -> None:
    assert set(PROFILES) >= {"mobile_typing", "customer_chat", "voice_transcript",
                             "non_native", "hurried"}


def _parts_available(cls) -> bool:
    try:
        for part in cls.PARTS:
            get_transform(part.transform)._validate(dict(part.options))
    except UnknownNameError:
        return False
    return True


@pytest.mark.parametrize("name", PROFILES)
def test_declared_policy_is_strictest_of_parts(name: str) -> None:
    cls = get_transform(name)
    if not _parts_available(cls):
        pytest.skip("a part transform is not registered yet")
    assert cls.label_policy == cls.parts_policy()
    for part in cls.PARTS:  # documented in the docstring
        assert part.spec() in cls.__doc__ and f"x{part.scale}" in cls.__doc__


@pytest.mark.parametrize("name", PROFILES)
def test_real_profile_changes_text_deterministically(name: str) -> None:
    if not _parts_available(get_transform(name)):
        pytest.skip("a part transform is not registered yet")
    a = perturb(ITEM, f"{name}@high", seed=5)
    b = perturb(ITEM, f"{name}@high", seed=5)
    assert a == b and a.changed and a.item.target == "Paris"
    assert perturb(ITEM, f"{name}@0", seed=5).item == ITEM


def test_voice_transcript_at_full_severity_is_lower_case_and_unpunctuated() -> None:
    if not _parts_available(get_transform("voice_transcript")):
        pytest.skip("a part transform is not registered yet")
    for seed in range(5):
        out = perturb(ITEM, "voice_transcript@1", seed=seed).item.input
        assert not re.search(r"[A-Z]", re.sub(r"\bI\b", "", out)), out
        assert not any(ch in out for ch in ",.?")


def test_hurried_cuts_at_most_a_third_and_may_break() -> None:
    if not _parts_available(get_transform("hurried")):
        pytest.skip("a part transform is not registered yet")
    v = perturb(ITEM, "hurried@1", seed=0)
    assert v.label_policy == "may_break"
    assert len(v.item.input.split()) >= 0.6 * len(ITEM.input.split())
