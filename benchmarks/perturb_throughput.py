"""Throughput of the transforms against the closest raw nlpaug augmenters.

Builds 10,000 question-like items from templates (deterministic, no downloads), then,
on the same items in the same run, times each of our transforms and its closest nlpaug
augmenter and prints microseconds per item and the ratio ours/nlpaug (below 1 means
ours is faster). Our timing covers what a run pays per variant inside the transform:
building the variant's own RNG and ``Transform.apply`` on the item (tokenising,
finding protected spans, editing). The ``perturb()`` column adds the provenance work of
the engine (spec canonicalisation, edit rate, the Variant record) for reference.
Contenders run on alternating blocks of items and the best of two passes is kept, so
a busy machine slows them alike and the ratios stay meaningful.

Last, one whole perturbation job (items x 4 transforms x 3 severities) runs through
``perturbations.perturb_items`` with ``workers=1`` and ``workers=2`` and the two outputs
are checked to be identical.

Run from the repository root: ``python benchmarks/perturb_throughput.py [n_items]``; the
suite (``python -m benchmarks``) runs it through :func:`figures`.
"""

from __future__ import annotations

import importlib
import logging
import os
import platform
import random
import sys
import time
import warnings
from typing import Any, Callable, Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from perturbations import Item, get_transform, perturb, perturb_items  # noqa: E402
from perturbations.engine import variant_rng  # noqa: E402
from perturbations.spec import parse_spec  # noqa: E402

__all__ = ["build_items", "measure", "perturb_job", "figures", "main"]

log = logging.getLogger(__name__)

SEVERITY = 0.5
"""Severity of the per-transform timings (``medium``)."""

NLPAUG_WORD_P = 0.25
"""nlpaug word rate matched to our medium severity (typos edit 0.5 * 0.5 = 25% of words)."""

_NAMES = ["Alice", "Bob", "Maria", "Chen", "Priya", "Omar", "Lena", "Tom", "Sara", "Ken"]
_ANIMALS = ["spider", "octopus", "horse", "beetle", "penguin", "crab", "cat", "ostrich"]
_COUNTRIES = ["France", "Japan", "Brazil", "Kenya", "Canada", "Norway", "Egypt", "Chile",
              "Vietnam", "Portugal", "Mexico", "Ireland"]
_ATTRS = ["capital", "official language", "currency", "largest city", "highest mountain",
          "national animal", "population"]
_GOODS = ["notebooks", "apples", "tickets", "shirts", "batteries", "coffees", "pencils"]
_TASKS = ["reset my password", "cancel my subscription", "change the delivery address",
          "get a refund for a broken phone", "update my billing information",
          "transfer money to another account", "book an appointment with a doctor"]
_TOPICS = ["photosynthesis", "inflation", "the water cycle", "plate tectonics", "vaccines",
           "compound interest", "the French Revolution", "black holes", "machine learning"]
_FACTS = ["the sky looks blue during the day", "ice floats on water",
          "leaves change colour in autumn", "the moon has phases", "bread rises when baked",
          "metal feels colder than wood", "we see lightning before we hear thunder"]


def _question(rng: random.Random, i: int) -> Item:
    kind = i % 8
    name = rng.choice(_NAMES)
    if kind == 0:
        text = f"What is the {rng.choice(_ATTRS)} of {rng.choice(_COUNTRIES)}?"
        return Item(id=f"bench-{i}", input=text, target="x")
    if kind == 1:
        text = f"How many legs does a {rng.choice(_ANIMALS)} have, and why is that useful for it?"
        return Item(id=f"bench-{i}", input=text, target="8", task="numeric")
    if kind == 2:
        n, price = rng.randint(2, 40), rng.randint(1, 99) + rng.choice((0, 0.25, 0.5))
        text = (f"If {name} buys {n} {rng.choice(_GOODS)} for ${price} each and pays with a "
                f"$100 bill, how much change does {name} get back?")
        return Item(id=f"bench-{i}", input=text, target=str(100 - n * price), task="numeric")
    if kind == 3:
        text = (f"Hi, I don't know how to {rng.choice(_TASKS)}. Can you please tell me what "
                f"I should do right now? Thank you!")
        return Item(id=f"bench-{i}", input=text, target="account", task="classification")
    if kind == 4:
        text = f"Can you explain why {rng.choice(_FACTS)}? I am going to teach it tomorrow."
        return Item(id=f"bench-{i}", input=text, target="x")
    if kind == 5:
        text = (f"Which of the following statements about {rng.choice(_TOPICS)} is correct? "
                f"Choose the best answer.")
        choices = tuple(f"Statement number {j} about the topic" for j in range(4))
        return Item(id=f"bench-{i}", input=text, target=rng.choice("ABCD"), choices=choices,
                    task="multiple_choice")
    if kind == 6:
        text = (f"Is it true that {rng.choice(_FACTS)}, or is that just something people "
                f"say because they do not know the real reason?")
        return Item(id=f"bench-{i}", input=text, target="yes", task="yes_no")
    text = (f"To be honest, I have been trying to understand {rng.choice(_TOPICS)} for "
            f"{rng.randint(2, 9)} weeks. What would you recommend reading first, and why?")
    return Item(id=f"bench-{i}", input=text, target="x")


def build_items(n_items: int = 10000) -> list[Item]:
    """``n_items`` realistic question-like items, the same on every call."""
    rng = random.Random("robustify-benchmark-items")  # a local RNG; global state untouched
    return [_question(rng, i) for i in range(n_items)]


def _nlpaug_augmenters() -> dict[str, Callable[[], Any]]:
    """Factories of the closest nlpaug augmenter per spec (imported lazily)."""
    import nlpaug.augmenter.char as nac
    import nlpaug.augmenter.word as naw
    import nlpaug.flow as naf

    char = dict(aug_word_p=NLPAUG_WORD_P, aug_char_min=1, aug_char_max=1, min_char=3)

    def slang_reserved() -> Any:
        from perturbations.transforms.slang import lexicon
        tokens = [[key, *values] for key, values in lexicon().substitutions.items()]
        return naw.ReservedAug(reserved_tokens=tokens, case_sensitive=False, aug_p=0.5)

    return {
        "typos:kind=keyboard": lambda: nac.KeyboardAug(
            include_special_char=False, include_numeric=False, **char),
        "typos:kind=swap": lambda: nac.RandomCharAug(action="swap", **char),
        "typos:kind=omit": lambda: nac.RandomCharAug(action="delete", **char),
        "typos:kind=ocr": lambda: nac.OcrAug(**char),
        "typos:kind=misspell": lambda: naw.SpellingAug(aug_p=NLPAUG_WORD_P),
        "typos": lambda: naf.Sometimes([
            nac.KeyboardAug(include_special_char=False, include_numeric=False, **char),
            nac.RandomCharAug(action="swap", **char),
            nac.RandomCharAug(action="delete", **char),
            naw.SpellingAug(aug_p=NLPAUG_WORD_P)], aug_p=0.25),
        "slang": slang_reserved,
    }


_NLPAUG_LABEL = {
    "typos:kind=keyboard": "KeyboardAug",
    "typos:kind=swap": "RandomCharAug(swap)",
    "typos:kind=omit": "RandomCharAug(delete)",
    "typos:kind=ocr": "OcrAug",
    "typos:kind=misspell": "SpellingAug",
    "typos": "Sometimes[Keyboard,swap,delete,Spelling]",
    "slang": "ReservedAug(slang lexicon)",
}

SPECS = ("typos:kind=keyboard", "typos", "typos:kind=swap", "typos:kind=omit",
         "typos:kind=ocr", "typos:kind=misspell", "slang", "punctuation", "whitespace",
         "contractions", "truncation", "ambiguity")
"""Specs timed by :func:`measure`, in table order."""


def _registered(name: str) -> bool:
    try:
        # Import the module directly first: the registry walks every transform module
        # and one that fails to import (a peer's work in progress) must not hide others.
        importlib.import_module(f"perturbations.transforms.{name}")
    except Exception:
        pass
    try:
        get_transform(name)
        return True
    except Exception as exc:  # not written yet, or a peer module that fails to import
        log.info("transform %s unavailable: %s", name, exc)
        return False


def _ours(spec_text: str) -> tuple[Callable[[Item], Any], Callable[[Item], Any]]:
    """(variant RNG + apply, whole perturb()) for one spec at :data:`SEVERITY`."""
    spec = parse_spec(f"{spec_text}@{SEVERITY}")
    canonical = str(spec)
    transform = spec.parts[0].build()

    def core(item: Item) -> Any:
        return transform.apply(item, SEVERITY, variant_rng(0, canonical, SEVERITY, 0, item.id))

    def full(item: Item) -> Any:
        return perturb(item, spec, seed=0)

    return core, full


def _interleaved(funcs: Sequence[Callable[[Item], Any]], items: Sequence[Item],
                 block: int = 250, rounds: int = 2) -> list[float]:
    """Microseconds per item of each function, timed block by block in rotating order.

    The machine is shared, so load changes during a run; timing the contenders on
    alternating small blocks exposes them to the same load, and the best of
    ``rounds`` passes drops the worst interference.
    """
    for f in funcs:  # warm-up: lazy data loading is not per-item work
        for item in items[:50]:
            f(item)
    best = [float("inf")] * len(funcs)
    for _ in range(rounds):
        totals = [0.0] * len(funcs)
        for b, lo in enumerate(range(0, len(items), block)):
            chunk = items[lo:lo + block]
            order = list(range(len(funcs)))
            shift = b % len(funcs)
            for j in order[shift:] + order[:shift]:
                f = funcs[j]
                start = time.perf_counter()
                for item in chunk:
                    f(item)
                totals[j] += time.perf_counter() - start
        best = [min(a, t) for a, t in zip(best, totals)]
    return [t / len(items) * 1e6 for t in best]


def measure(n_items: int = 10000) -> list[dict]:
    """Time every spec in :data:`SPECS` and its nlpaug counterpart on the same items.

    Returns:
        One dict per spec: ``spec``, ``ours_us`` (variant RNG + ``apply``, microseconds
        per item), ``perturb_us`` (the whole ``perturb()`` call), ``items_per_s``,
        ``nlpaug`` (augmenter name or None), ``nlpaug_us``, ``ratio`` (ours/nlpaug) and
        ``note``.
    """
    items = build_items(n_items)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            factories = _nlpaug_augmenters()
        except ImportError as exc:
            log.warning("nlpaug unavailable (%s); timing ours only", exc)
            factories = {}
    rows: list[dict] = []
    for spec in SPECS:
        name = spec.split(":")[0]
        row: dict[str, Any] = {"spec": spec, "ours_us": None, "perturb_us": None,
                               "items_per_s": None, "nlpaug": _NLPAUG_LABEL.get(spec),
                               "nlpaug_us": None, "ratio": None, "note": ""}
        if not _registered(name):
            row["note"] = "not registered yet: skipped"
            rows.append(row)
            continue
        funcs = list(_ours(spec))
        if spec in factories:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                funcs.append(factories[spec]().augment)
                timings = _interleaved([lambda it, f=f: f(it) for f in funcs[:2]]
                                       + [lambda it, f=funcs[2]: f(it.input)], items)
            row["nlpaug_us"] = timings[2]
        else:
            timings = _interleaved(funcs, items)
            row["note"] = "no nlpaug equivalent"
        row["ours_us"], row["perturb_us"] = timings[0], timings[1]
        row["items_per_s"] = 1e6 / row["ours_us"]
        if row["nlpaug_us"]:
            row["ratio"] = row["ours_us"] / row["nlpaug_us"]
        rows.append(row)
    return rows


def perturb_job(n_items: int = 10000, transforms: Sequence[str] = ("typos", "slang",
                                                                   "truncation", "ambiguity"),
                severities: Sequence[str] = ("low", "medium", "high")) -> dict:
    """Run one perturbation job with 1 and 2 workers and compare the outputs.

    Transforms that are not registered are replaced by ``punctuation``/``whitespace``
    (noted in the result) so the job always has four transforms.
    """
    items = build_items(n_items)
    chosen, notes = [], []
    spares = [t for t in ("punctuation", "whitespace", "contractions") if t not in transforms]
    for name in transforms:
        if _registered(name):
            chosen.append(name)
        else:
            spare = spares.pop(0)
            chosen.append(spare)
            notes.append(f"{name} not registered: used {spare}")
    timings, outputs = {}, {}
    for workers in (1, 2):
        start = time.perf_counter()
        outputs[workers] = [v.to_json() for v in perturb_items(
            items, chosen, severities=severities, seed=0, workers=workers)]
        timings[workers] = time.perf_counter() - start
    n = len(outputs[1])
    return {"transforms": chosen, "variants": n, "seconds_w1": timings[1],
            "seconds_w2": timings[2], "us_per_variant_w1": timings[1] / n * 1e6,
            "us_per_variant_w2": timings[2] / n * 1e6, "speedup": timings[1] / timings[2],
            "identical": outputs[1] == outputs[2], "note": "; ".join(notes)}


def _fmt(value: Any, spec: str = "{:.1f}") -> str:
    return "-" if value is None else spec.format(value)


def main(argv: Sequence[str] | None = None) -> list[dict]:
    """Print the comparison table and the job timing; return the per-spec rows."""
    args = list(sys.argv[1:] if argv is None else argv)
    n_items = int(args[0]) if args else 10000
    logging.basicConfig(level=logging.WARNING)
    print(f"perturbation throughput, {n_items} items, severity {SEVERITY}; "
          f"{platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} cores, {platform.machine()}")
    rows = measure(n_items)
    header = (f"{'spec':<22} {'ours us/item':>12} {'perturb() us':>12} {'items/s':>9}  "
              f"{'nlpaug augmenter':<42} {'nlpaug us':>9} {'ours/nlpaug':>11}  note")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['spec']:<22} {_fmt(r['ours_us']):>12} {_fmt(r['perturb_us']):>12} "
              f"{_fmt(r['items_per_s'], '{:.0f}'):>9}  {(r['nlpaug'] or '-'):<42} "
              f"{_fmt(r['nlpaug_us']):>9} {_fmt(r['ratio'], '{:.2f}'):>11}  {r['note']}")
    job = perturb_job(n_items)
    print(f"\nperturb_items job: {n_items} items x {len(job['transforms'])} transforms "
          f"({', '.join(job['transforms'])}) x 3 severities = {job['variants']} variants")
    print(f"  workers=1: {job['seconds_w1']:.2f} s ({job['us_per_variant_w1']:.1f} us/variant)")
    print(f"  workers=2: {job['seconds_w2']:.2f} s ({job['us_per_variant_w2']:.1f} us/variant), "
          f"speed-up x{job['speedup']:.2f}; outputs identical: {job['identical']}")
    if job["note"]:
        print(f"  note: {job['note']}")
    if not job["identical"]:
        raise SystemExit("workers=1 and workers=2 produced different variants")
    return rows


def figures(n_items: int = 5000) -> tuple[dict, list]:
    """The measurements above as rows of the suite's table (``benchmarks/run_all.py``)."""
    from benchmarks.common import Figure

    rows = measure(n_items)
    job = perturb_job(n_items)
    out = []
    for r in rows:
        if r["ours_us"] is None:
            continue
        note = f"{r['ours_us']:.0f} us/item, perturb() {r['perturb_us']:.0f} us"
        if r["ratio"] is not None:
            note += f"; {r['nlpaug']} {r['nlpaug_us']:.0f} us: ours/nlpaug {r['ratio']:.2f}"
        out.append(Figure("perturb", f"{r['spec']} items/s", r["items_per_s"], "items/s",
                          note=note, extra=r))
    out.append(Figure("perturb", "perturb_items job, variants/s (1 worker)",
                      1e6 / job["us_per_variant_w1"], "var/s",
                      note=f"{job['variants']} variants ({', '.join(job['transforms'])} x 3 "
                           f"severities); 2 workers x{job['speedup']:.2f}; identical: "
                           f"{job['identical']}", extra=job))
    return {"specs": rows, "job": job}, out


if __name__ == "__main__":
    main()
