"""The contract every registered transform and profile must honour.

Parametrised over the registry, so a new transform is tested the moment it registers:
determinism (order, seed, PYTHONHASHSEED), identity at severity 0, no mutation, label
policy, protected spans, the guard (no kept variant breaks it; an unchanged one says why
or drew nothing), robustness on arbitrary Unicode, documented severity and label, edit
rate growing with severity, and golden outputs at low/medium/high.
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perturbations import Item, check_variant, get_transform, perturb, transform_names
from perturbations.text import protected_spans

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
NAMES = transform_names()

ITEMS = [
    Item(id="mc-1", task="multiple_choice",
         input="Which planet in our solar system is known as the Red Planet because of its dusty surface?",
         choices=("Venus", "Mars", "Jupiter", "Saturn"), target="B",
         metadata={"domain": "science"}),
    Item(id="yn-1", task="yes_no",
         input="Based on the passage, is the library open on Sunday mornings for students?",
         context="The city library opens at 9 a.m. on weekdays. On Sundays it opens at noon, "
                 "and students can borrow up to 5 books at a time.",
         target="no"),
    Item(id="math-1", task="numeric",
         input="Sarah bought 3 packs of pencils with 12 pencils in each pack, and then she gave "
               "7 pencils to her brother. How many pencils does she have left?",
         target="29"),
    Item(id="intent-1", task="classification",
         input="Hi, I was charged twice for my subscription this month and I would like my money back please.",
         target="refund", metadata={"labels": ["billing", "refund", "cancel_subscription"]}),
    Item(id="fact-1", task="short_answer",
         input="What is the capital city of Australia, which is not Sydney as many people think?",
         target="Canberra", metadata={"protect": ["Sydney"]}),
    Item(id="fact-2", task="short_answer",
         input="Who wrote the novel Pride and Prejudice, published in 1813? Answer in one word.",
         target="Austen"),
]

CORPUS = ITEMS + [
    Item(id=f"extra-{i}", input=text, target="x")
    for i, text in enumerate([
        "Can you tell me how long it takes to boil an egg so that the yolk is still soft?",
        "I don't know why my phone keeps restarting every time I open the camera app, can you help?",
        "What is the difference between a crocodile and an alligator, and which one is bigger?",
        "How do I reset my password if I no longer have access to the email on my account?",
        "Please explain why the sky looks blue during the day but red at sunset.",
        "If a train leaves the station at 4 pm and travels for 2 hours, what time does it arrive?",
        "Which river is the longest in the world, the Nile or the Amazon, according to recent studies?",
        "My order was supposed to arrive last Tuesday but the tracking page has not changed since then.",
        "What should I do if my dog eats chocolate while I am not at home?",
        "Is it true that the Great Wall of China can be seen from space with the naked eye?",
    ])
]


def _spec(name: str, severity: str) -> str:
    return f"{name}@{severity}"


def _dump(variant) -> dict:
    item = variant.item
    return {"input": item.input, "context": item.context,
            "choices": list(item.choices) if item.choices else None, "target": item.target}


@pytest.mark.parametrize("name", NAMES)
def test_docstring_states_severity_and_label(name: str) -> None:
    cls = get_transform(name)
    doc = cls.__doc__ or ""
    assert cls.summary(), f"{name}: docstring needs a summary line"
    assert "Severity:" in doc and cls.severity_doc(), f"{name}: docstring needs 'Severity:'"
    assert "Label:" in doc, f"{name}: docstring needs 'Label:'"
    assert cls.label_policy in doc, f"{name}: docstring must name its policy {cls.label_policy!r}"


@pytest.mark.parametrize("name", NAMES)
def test_identity_at_severity_zero(name: str) -> None:
    for item in ITEMS:
        v = perturb(item, f"{name}@0", seed=3)
        assert v.item == item
        assert v.changed is False and v.edit_rate == 0.0


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_and_order_independent(name: str) -> None:
    forward = [_dump(perturb(it, _spec(name, "high"), seed=7)) for it in ITEMS]
    backward = [_dump(perturb(it, _spec(name, "high"), seed=7)) for it in reversed(ITEMS)]
    assert forward == list(reversed(backward))
    # interleaving other transforms on other items must not shift this one's stream
    mixed = []
    for it in ITEMS:
        perturb(it, "casing@high", seed=7)
        mixed.append(_dump(perturb(it, _spec(name, "high"), seed=7)))
    assert mixed == forward


@pytest.mark.parametrize("name", NAMES)
def test_seed_and_replicate_change_the_noise(name: str) -> None:
    cls = get_transform(name)
    if cls.deterministic:
        pytest.skip(f"{name} declares deterministic output")
    base = [_dump(perturb(it, _spec(name, "high"), seed=0)) for it in CORPUS]
    other_seeds = [[_dump(perturb(it, _spec(name, "high"), seed=s)) for it in CORPUS]
                   for s in (1, 2, 3)]
    assert any(o != base for o in other_seeds), f"{name}: the seed has no effect"
    reps = [_dump(perturb(it, _spec(name, "high"), seed=0, replicate=1)) for it in CORPUS]
    assert reps != base or any(o != base for o in other_seeds)


@pytest.mark.parametrize("name", NAMES)
def test_input_not_mutated(name: str) -> None:
    for item in ITEMS:
        before = copy.deepcopy(item)
        perturb(item, _spec(name, "high"), seed=1)
        assert item == before and dict(item.metadata) == dict(before.metadata)


@pytest.mark.parametrize("name", NAMES)
def test_label_policy_honoured(name: str) -> None:
    cls = get_transform(name)
    for item in ITEMS:
        for sev in ("low", "medium", "high"):
            v = perturb(item, _spec(name, sev), seed=11)
            out = v.item
            assert out.id == item.id and out.task == item.task
            assert v.label_policy == cls.label_policy or cls.family == "profile"
            if cls.label_policy == "preserves":
                assert out.target == item.target
                assert out.choices == item.choices
            elif cls.label_policy == "remaps":
                if item.choices:
                    assert sorted(out.choices) == sorted(item.choices)
                    gold = item.choices[ord(item.target) - 65]
                    assert out.choices[ord(out.target) - 65] == gold
                else:
                    assert out.target == item.target


@pytest.mark.parametrize("name", NAMES)
def test_protected_spans_survive(name: str) -> None:
    cls = get_transform(name)
    if cls.touches_protected or cls.label_policy == "may_break":
        pytest.skip(f"{name} rewrites protected spans by design ({cls.label_policy})")
    for item in ITEMS:
        phrases = item.metadata.get("protect", ())
        spans = protected_spans(item.input, phrases)
        for sev in ("low", "medium", "high"):
            out = perturb(item, _spec(name, sev), seed=5).item.input
            for start, end in spans:
                piece = item.input[start:end]
                assert out.count(piece) >= item.input.count(piece), (name, sev, piece, out)


@pytest.mark.parametrize("name", NAMES)
def test_guard_holds_and_no_ops_are_explained(name: str) -> None:
    cls = get_transform(name)
    for item in CORPUS:
        for sev in ("low", "high"):
            v = perturb(item, _spec(name, sev), seed=2)
            assert not v.dropped, (name, item.id, v.guard_violations)
            assert check_variant(item, v.item, v.label_policy) == ()
            assert v.guard in ("passed", "redrawn") and isinstance(v.notes, tuple)
            assert (v.skip_reason is None) or (not v.changed and isinstance(v.skip_reason, str))
            assert "input" in v.field_edits
            if not v.changed:
                # cannot_apply is pure: asking again gives the same answer
                assert cls(**{}).cannot_apply(item, 0.8) == cls(**{}).cannot_apply(item, 0.8)


@pytest.mark.parametrize("name", NAMES)
def test_edit_rate_grows_with_severity(name: str) -> None:
    means = []
    for sev in ("low", "medium", "high"):
        rates = [perturb(it, _spec(name, sev), seed=0, replicate=r).edit_rate
                 for it in CORPUS for r in range(3)]
        means.append(statistics.fmean(rates))
    assert means[2] > 0, f"{name}: no edits at high severity"
    assert means[0] <= means[1] * 1.1 + 1e-9 and means[1] <= means[2] * 1.1 + 1e-9, (name, means)
    assert means[0] < means[2], (name, means)


_UNICODE = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=120
).filter(lambda s: s.strip() != "")


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_UNICODE)
def test_no_exception_on_arbitrary_unicode(name: str, text: str) -> None:
    item = Item(id="u", input=text, target="x", choices=(text, "b"), context=text,
                task="short_answer")
    for sev in ("low", "high"):
        v = perturb(item, _spec(name, sev), seed=0)
        assert isinstance(v.item.input, str) and v.item.input.strip()


def _golden_payload(name: str) -> dict:
    out: dict = {}
    for sev in ("low", "medium", "high"):
        for item in ITEMS[:4]:
            v = perturb(item, _spec(name, sev), seed=0)
            out[f"{sev}/{item.id}"] = _dump(v)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_golden_outputs(name: str, update_golden: bool) -> None:
    path = GOLDEN / f"{name}.json"
    payload = _golden_payload(name)
    if update_golden or not path.exists():
        if not update_golden and os.environ.get("CI"):
            pytest.fail(f"golden file {path.name} is missing")
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    expected = json.loads(path.read_text(encoding="utf-8"))
    assert payload == expected, f"{name}: output changed; if intended, rerun with ROBUSTIFY_UPDATE_GOLDEN=1"


_SCRIPT = """
import json, sys
sys.path.insert(0, {root!r})
from perturbations import perturb, transform_names
from tests.perturbations.test_contract import ITEMS
out = {{n: [perturb(it, n + "@high", seed=9).to_dict() for it in ITEMS] for n in transform_names()}}
print(json.dumps(out, sort_keys=True))
"""


def test_independent_of_pythonhashseed() -> None:
    outputs = []
    for hashseed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": hashseed}
        proc = subprocess.run([sys.executable, "-c", _SCRIPT.format(root=str(ROOT))],
                              capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout)
    assert outputs[0] == outputs[1]
    assert set(json.loads(outputs[0])) == set(NAMES)
