"""Model-written rewrites, part 3: asking the rewriter (and a judge) through the runner.

Calls go through :func:`robustify.runner.execute.run_queries`, so they are cached in the
:class:`~robustify.runner.cache.ResponseCache` like any other (keyed by the rewriter's
identity, including its seeded :class:`~robustify.records.GenerationParams`, and the
messages), deduplicated and concurrent.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from perturbations import Item, Variant, perturb
from perturbations.text import edit_rate
from perturbations.version import __version__

from robustify.atomic import write_text_atomic
from robustify.models import parse_model_spec
from robustify.probes.rewrite.checks import check_rewrite, clean_rewrite
from robustify.probes.rewrite.specs import (JUDGE_SYSTEM, JUDGE_TEMPLATE, PERSONAS,
                                            REJECTION_COLUMNS, SYSTEM_PROMPT, USER_TEMPLATE,
                                            RewriteSpec, parse_rewrite_spec, rewrite_messages)
from robustify.records import GenerationParams, Score
from robustify.runner.execute import run_queries

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["rewrite_variants", "rewrite_manifest", "RewriteOutcome", "run_rewrite_specs"]

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------ running

def _derived_seed(seed: int, replicate: int) -> int:
    # replicate 0 uses the run seed itself, so a rewrite is the same call in every run
    return int(seed) + int(replicate)


def _build(spec_text: str, params: GenerationParams) -> Any:
    return parse_model_spec(spec_text, params=params)


def _ask(items: Sequence[Item], backend: Any, messages_of: Any, cache: Any,
         progress: bool) -> pd.DataFrame:
    variants = [Variant.clean(item, version=__version__) for item in items]
    return run_queries(variants, [backend], build_messages=messages_of,
                       score=lambda _item, _text: Score(0.0), cache=cache, progress=progress)


def _effective(rs: RewriteSpec, backend: Any, judge: Any) -> RewriteSpec:
    """The spec naming the models really used (a passed backend overrides the spec's)."""
    if isinstance(backend, str):
        rs = dataclasses.replace(rs, model=backend)
    elif backend is not None:
        rs = dataclasses.replace(rs, model=str(getattr(backend, "label", rs.model)))
    if isinstance(judge, str):
        rs = dataclasses.replace(rs, judge=judge)
    elif judge is not None:
        rs = dataclasses.replace(rs, judge=str(getattr(judge, "label", "judge")))
    return rs


def _judge_verdict(text: str | None) -> bool | None:
    if not text:
        return None
    m = re.match(r"\W*(yes|no)\b", text.strip(), re.IGNORECASE)
    if m:
        return m.group(1).lower() == "yes"
    yes = re.search(r"\byes\b", text, re.IGNORECASE)
    no = re.search(r"\bno\b", text, re.IGNORECASE)
    if bool(yes) != bool(no):
        return bool(yes)
    return None


def rewrite_variants(items: Sequence[Item], spec: str | RewriteSpec, backend: Any = None,
                     cache: Any = None, seed: int = 0, *, replicate: int = 0,
                     judge: Any = None, progress: bool = False
                     ) -> tuple[list[Variant], pd.DataFrame]:
    """Ask a model to rewrite every item's question, check each rewrite, keep the good ones.

    Args:
        items: The clean items.
        spec: A ``rewrite:...`` spec string or :class:`RewriteSpec`.
        backend: The rewriter: ``None`` (the spec's ``model``), a model spec string, or
            a ready backend (used as given and not closed; its own params apply). A
            backend built here gets ``GenerationParams(temperature=spec.temperature,
            seed=seed + replicate, max_tokens=spec.max_tokens)``.
        cache: A :class:`~robustify.runner.cache.ResponseCache` (or ``None``): rewrites are
            cached by rewriter identity (with its params, hence the seed) and messages.
        seed: Run seed; recorded on the variants and passed to the rewriter.
        replicate: Replicate index; with temperature 0 every replicate gives the same
            text, so ask replicate 0 only.
        judge: Optional judge (spec string or backend; default the spec's ``judge``):
            a rewrite is kept only when the judge answers Yes to "same question?".
        progress: Show a progress bar.

    Returns:
        ``(variants, rejected)``: one :class:`~perturbations.Variant` per accepted
        rewrite (``spec`` = the canonical spec naming the rewriter really used, a
        passed backend by its label; ``transform`` = ``rewrite_<persona>``; severity 1;
        the persona's label policy; only the question is rewritten, options and context
        are kept), and a DataFrame with one row per rejected item
        (:data:`REJECTION_COLUMNS`; ``reason`` is the gravest reason, ``reasons`` all).
        ``rejected.attrs["rewriter_identity"]`` holds the rewriter's cache identity.
    """
    rs = _effective(parse_rewrite_spec(spec), backend, judge)
    persona = PERSONAS[rs.persona]
    params = GenerationParams(temperature=rs.temperature, seed=_derived_seed(seed, replicate),
                              max_tokens=rs.max_tokens)
    owned: list[Any] = []
    if backend is None or isinstance(backend, str):
        backend = _build(backend or rs.model, params)
        owned.append(backend)
    judge = judge if judge is not None else rs.judge
    if isinstance(judge, str):  # built here from its spec string
        judge = _build(judge, GenerationParams(temperature=0.0, seed=int(seed), max_tokens=8))
        owned.append(judge)
    label = getattr(backend, "label", str(backend))
    identity = _identity(backend)
    items = list(items)
    try:
        asked = _ask(items, backend, lambda item: rewrite_messages(item, rs.persona), cache,
                     progress)
        by_id = {item.id: item for item in items}
        accepted: list[tuple[Item, str]] = []
        rejected: list[dict[str, Any]] = []

        def reject(item: Item, reasons: list[str], cleaned: str, raw: Any) -> None:
            rejected.append({"item_id": item.id, "spec": rs.canonical, "persona": rs.persona,
                             "rewriter": label, "replicate": replicate,
                             "reason": reasons[0].split(":", 1)[0], "reasons": "; ".join(reasons),
                             "rewrite": cleaned, "raw": raw, "original": item.input})

        for row in asked.to_dict("records"):
            item = by_id[row["item_id"]]
            raw = row.get("response")
            if row.get("error") is not None or raw is None:
                reject(item, [f"call_failed: {row.get('error')}"], "", None)
                continue
            cleaned = clean_rewrite(raw)
            reasons = check_rewrite(item, cleaned, keep_spans=persona.keep_spans, raw=raw)
            if reasons:
                reject(item, reasons, cleaned, raw)
            else:
                accepted.append((item, cleaned))
        if judge is not None and accepted:
            candidates = [dataclasses.replace(item, input=text) for item, text in accepted]
            originals = {item.id: item.input for item, _ in accepted}
            verdicts = _ask(candidates, judge, lambda cand: [
                {"role": "system", "content": JUDGE_SYSTEM},
                {"role": "user", "content": JUDGE_TEMPLATE.format(
                    original=originals[cand.id], rewrite=cand.input)}], cache, progress)
            verdict_of = {r["item_id"]: (r.get("response"), r.get("error"))
                          for r in verdicts.to_dict("records")}
            kept = []
            for item, text in accepted:
                answer, error = verdict_of[item.id]
                verdict = None if error else _judge_verdict(answer)
                if verdict is True:
                    kept.append((item, text))
                elif verdict is False:
                    reject(item, ["judge: the judge model says the meaning changed"], text, answer)
                else:
                    reject(item, [f"judge: no clear verdict ({error or (answer or '')[:60]!r})"],
                           text, answer)
            accepted = kept
    finally:
        for b in owned:
            b.close()
    if rs.then:
        accepted = _compose(accepted, rs, seed, replicate, reject)
    variants = [Variant(item=dataclasses.replace(item, input=text), spec=rs.canonical,
                        transform=rs.transform, severity=1.0, seed=int(seed),
                        replicate=int(replicate), changed=True,
                        edit_rate=round(edit_rate(item.input, text), 6),
                        label_policy=rs.label_policy, version=__version__)
                for item, text in accepted]
    order = {item.id: i for i, item in enumerate(items)}
    frame = _rejections(sorted(rejected, key=lambda r: order[r["item_id"]]))
    # the manifest records who really rewrote, also when the backend was built here
    frame.attrs["rewriter_identity"] = identity
    log.info("%s: %d rewrites kept, %d rejected", rs.canonical, len(variants), len(frame))
    return variants, frame


def _compose(accepted: list[tuple[Item, str]], rs: RewriteSpec, seed: int, replicate: int,
             reject: Any) -> list[tuple[Item, str]]:
    """Apply ``rs.then`` (a registry spec) to each accepted rewrite, as the engine applies
    the parts of a composed spec: its own seeded RNG per item, the gold guard against the
    rewrite it starts from (a variant no draw keeps is rejected with the guard's reason)."""
    kept = []
    for item, text in accepted:
        variant = perturb(dataclasses.replace(item, input=text), rs.then, seed=seed,
                          replicate=replicate)
        if variant.dropped:
            kinds = ", ".join(sorted({v.split(":", 1)[0] for v in variant.guard_violations}))
            reject(item, [f"guard: {rs.then} broke the rewrite ({kinds or 'violation'})"],
                   variant.item.input, text)
            continue
        kept.append((item, variant.item.input))
    return kept


def _identity(backend: Any) -> dict[str, Any] | None:
    try:
        identity = dict(backend.identity())
    except Exception:  # a foreign backend without identity(): record the label only
        return None
    identity.pop("api_key", None)  # defensive: identities never carry keys
    return identity


def rewrite_manifest(spec: str | RewriteSpec, backend: Any = None, *, n_items: int,
                     variants: Sequence[Variant] = (), rejected: pd.DataFrame | None = None,
                     seed: int = 0) -> dict[str, Any]:
    """The manifest entry of one rewrite spec: who rewrote, with which prompt, how it went.

    Args:
        spec: The rewrite spec.
        backend: The rewriter backend, if one was passed (its identity is recorded);
            otherwise the identity :func:`rewrite_variants` left on ``rejected.attrs``
            and the spec's model string are.
        n_items: Items asked.
        variants, rejected: What :func:`rewrite_variants` returned.
        seed: Run seed.
    """
    rs = _effective(parse_rewrite_spec(spec), backend, None)
    rejected = rejected if rejected is not None else _rejections([])
    identity = rejected.attrs.get("rewriter_identity")
    if backend is not None and not isinstance(backend, str):
        identity = _identity(backend)
    return {
        "spec": rs.canonical, "transform": rs.transform, "persona": rs.persona,
        "label_policy": rs.label_policy, "rewriter": rs.model,
        "rewriter_identity": identity, "judge": rs.judge,
        "params": {"temperature": rs.temperature, "seed": int(seed), "max_tokens": rs.max_tokens},
        "prompt": {"system": SYSTEM_PROMPT, "user": USER_TEMPLATE.format(
            description=PERSONAS[rs.persona].description, question="{question}")},
        "n_items": int(n_items), "n_accepted": len(variants), "n_rejected": int(len(rejected)),
        "rejected_by_reason": {str(k): int(v) for k, v in
                               rejected["reason"].value_counts().items()} if len(rejected) else {},
    }


def _rejections(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The rejected-rewrites frame (pandas is imported here, not before the model calls)."""
    import pandas as pd

    return pd.DataFrame(rows, columns=list(REJECTION_COLUMNS))


@dataclass
class RewriteOutcome:
    """Everything :func:`run_rewrite_specs` produced for a run."""

    variants: list[Variant] = field(default_factory=list)
    """Accepted rewrites of every spec (and replicate), in spec then item order."""
    rejected: pd.DataFrame = field(default_factory=lambda: _rejections([]))
    """Rejected rewrites with reasons."""
    manifest: list[dict[str, Any]] = field(default_factory=list)
    """One :func:`rewrite_manifest` entry per spec."""

    def write(self, out_dir: str | os.PathLike[str]) -> Path:
        """Write ``rewrite_rejections.csv`` atomically into ``out_dir``."""
        return write_text_atomic(Path(out_dir) / "rewrite_rejections.csv",
                                 self.rejected.to_csv(index=False))


def run_rewrite_specs(items: Sequence[Item], specs: Sequence[str | RewriteSpec], *,
                      seed: int = 0, cache: Any = None, replicates: int = 1,
                      progress: bool = False,
                      backends: Mapping[str, Any] | None = None) -> RewriteOutcome:
    """Run every rewrite spec of a job: the one call ``run_job`` needs.

    Args:
        items: The job's items.
        specs: Rewrite specs (see :func:`split_rewrite_specs`).
        seed: The job seed.
        cache: The job's response cache.
        replicates: The job's replicates; with temperature 0 only replicate 0 is asked
            (the others would repeat it word for word).
        progress: Show progress bars.
        backends: Optional ready backends by model spec string (e.g. reuse a loaded
            model); others are built from the spec and closed afterwards.

    Returns:
        A :class:`RewriteOutcome`.
    """
    import pandas as pd

    outcome = RewriteOutcome()
    frames = []
    for spec in specs:
        rs = parse_rewrite_spec(spec)
        reps = range(replicates if rs.temperature > 0 else 1)
        kept: list[Variant] = []
        rejected_parts = []
        backend = (backends or {}).get(rs.model)
        for rep in reps:
            variants, rejected = rewrite_variants(items, rs, backend, cache, seed, replicate=rep,
                                                  progress=progress)
            kept += variants
            rejected_parts.append(rejected)
        rejected_all = pd.concat(rejected_parts, ignore_index=True) if rejected_parts else None
        if rejected_all is not None:
            rejected_all.attrs["rewriter_identity"] = rejected_parts[0].attrs.get(
                "rewriter_identity")
        outcome.variants += kept
        if rejected_all is not None:
            frames.append(rejected_all)
        outcome.manifest.append(rewrite_manifest(rs, backend, n_items=len(items) * len(reps),
                                                 variants=kept, rejected=rejected_all, seed=seed))
    if frames:
        outcome.rejected = pd.concat(frames, ignore_index=True)
    return outcome
