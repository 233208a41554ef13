"""Run-to-run comparison: did the new release (or fine-tune) get more robust, or less?

Benchmarks that never change hide regressions in robustness: a release can keep its
clean score and lose several points under noise. :func:`compare_runs` takes two or more
run folders written by ``python -m robustify run`` and reports, per model, transform and
severity, how the clean score, the perturbed score and the paired drop changed.

Pairing: a noisy row of run A is matched with the row of run B that has the same
``item_id``, ``spec`` and ``replicate`` (the same severity is part of the spec), and
each run's row keeps its *own* clean answer. The changes are then paired item by item,
and their intervals come from a bootstrap that resamples items (all rows of an item
together), as in :mod:`robustify.analysis`. When the runs share no row for a group
(different data or specs) the group is compared unpaired: each run's items are
resampled on their own, and the row says ``paired = False``.

Models are matched by label when the runs share labels (the same model re-run on new
data or a new robustify version), and otherwise when each run holds exactly one model
(``openai:model-v1`` in A against ``openai:model-v2`` in B); pass ``models={"a": "b"}``
(CLI ``--models a=b``) for anything else.

The chart and the report are in :mod:`robustify.probes.compare.report`.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from perturbations.errors import ConfigError

from robustify.analysis import LABEL_PRESERVING, pair_with_clean
from robustify.analysis.stats import bootstrap_ci, group_rng, mcnemar_exact
from robustify.reporting.results_io import load_results

__all__ = ["COMPARE_COLUMNS", "ALL_PRESERVING", "CLEAN_ROW", "load_run", "compare_runs",
           "compare_pair"]

log = logging.getLogger(__name__)

ALL_PRESERVING = "(all label-preserving)"
"""``transform`` of the pooled row over every label-preserving variant."""

CLEAN_ROW = "clean"
"""``transform`` of the row comparing clean scores item by item."""

COMPARE_COLUMNS = (
    "run_a", "run_b", "model_a", "model_b", "transform", "severity", "spec", "paired",
    "n_items", "n_rows", "n_only_a", "n_only_b", "same_text",
    "clean_a", "clean_b", "clean_change_pp", "clean_change_ci_low_pp", "clean_change_ci_high_pp",
    "perturbed_a", "perturbed_b", "perturbed_change_pp", "perturbed_change_ci_low_pp",
    "perturbed_change_ci_high_pp",
    "drop_a_pp", "drop_b_pp", "drop_change_pp", "drop_change_ci_low_pp", "drop_change_ci_high_pp",
    "p_value",
)
"""Columns of :func:`compare_runs` (scores are fractions; ``_pp`` columns percentage points).

``drop_change_pp`` < 0 means run B lost less under this noise (more robust);
``p_value`` is an exact sign test over items of the change in the perturbed outcome
(paired rows only)."""

_NAN = math.nan


def load_run(run: Any) -> tuple[pd.DataFrame, dict[str, Any], str]:
    """``(results, manifest, label)`` of a run folder, a :class:`RunResult` or a frame.

    Raises:
        ConfigError: a path that is not a run folder.
    """
    if isinstance(run, pd.DataFrame):
        return run, {}, "run"
    if hasattr(run, "results") and hasattr(run, "manifest"):
        label = Path(run.out_dir).name if getattr(run, "out_dir", None) else "run"
        return run.results, dict(run.manifest), label
    if isinstance(run, tuple) and len(run) == 2:
        return run[0], dict(run[1]), "run"
    path = Path(run)
    if not path.is_dir():
        raise ConfigError(f"{path}: not a run folder (expected a folder written by "
                          f"'python -m robustify run')")
    if not (path / "results.jsonl").is_file() and not (path / "results.parquet").is_file():
        raise ConfigError(f"{path}: not a run folder (no results.jsonl)")
    results, manifest = load_results(path)
    return results, manifest, path.name


def _unpaired_ci(a: np.ndarray, ca: np.ndarray, b: np.ndarray, cb: np.ndarray, *,
                 rng: np.random.Generator, n_boot: int, ci: float) -> tuple[float, float]:
    """Bootstrap interval of mean(b) - mean(a), resampling each run's items on its own."""
    if not len(a) or not len(b) or n_boot <= 0:
        return (_NAN, _NAN)

    def draws(values: np.ndarray, clusters: np.ndarray) -> np.ndarray:
        codes = pd.factorize(pd.Series(clusters, dtype=object), sort=True)[0]
        m = int(codes.max()) + 1
        sums = np.bincount(codes, weights=values, minlength=m)
        counts = np.bincount(codes, minlength=m).astype(float)
        idx = rng.integers(0, m, size=(n_boot, m))
        return sums[idx].sum(axis=1) / counts[idx].sum(axis=1)

    stats = draws(b, cb) - draws(a, ca)
    alpha = (1.0 - ci) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return (float(low), float(high))


def _sign_test(right_a: pd.Series, right_b: pd.Series, items: pd.Series) -> float:
    net = (right_b.astype(int).to_numpy() - right_a.astype(int).to_numpy())
    per_item = pd.Series(net).groupby(items.to_numpy(), sort=False).sum()
    return mcnemar_exact(int((per_item > 0).sum()), int((per_item < 0).sum()))


def _group_row(ga: pd.DataFrame, gb: pd.DataFrame, *, rng: np.random.Generator, n_boot: int,
               ci: float) -> dict[str, Any]:
    keys = ["item_id", "spec", "replicate"]
    cols = keys + ["clean_score", "score", "input"]
    merged = ga[cols].merge(gb[cols], on=keys, how="inner", suffixes=("_a", "_b"))
    row: dict[str, Any] = {"n_only_a": int(len(ga) - len(merged)),
                           "n_only_b": int(len(gb) - len(merged))}
    if len(merged):
        items = merged["item_id"]
        ca, cb = merged["clean_score_a"].to_numpy(float), merged["clean_score_b"].to_numpy(float)
        pa, pb = merged["score_a"].to_numpy(float), merged["score_b"].to_numpy(float)
        row.update(paired=True, n_items=int(items.nunique()), n_rows=int(len(merged)),
                   same_text=float((merged["input_a"] == merged["input_b"]).mean()),
                   clean_a=float(ca.mean()), clean_b=float(cb.mean()),
                   perturbed_a=float(pa.mean()), perturbed_b=float(pb.mean()))
        for name, diff in (("clean_change", cb - ca), ("perturbed_change", pb - pa),
                           ("drop_change", (cb - pb) - (ca - pa))):
            low, high = bootstrap_ci(diff, clusters=items.to_numpy(), n_boot=n_boot, seed=rng,
                                     ci=ci)
            row[f"{name}_ci_low_pp"], row[f"{name}_ci_high_pp"] = low * 100.0, high * 100.0
        row["p_value"] = _sign_test(merged["score_a"] >= 0.5, merged["score_b"] >= 0.5, items)
    else:
        ca, cb = ga["clean_score"].to_numpy(float), gb["clean_score"].to_numpy(float)
        pa, pb = ga["score"].to_numpy(float), gb["score"].to_numpy(float)
        row.update(paired=False, n_items=int(pd.concat([ga["item_id"], gb["item_id"]]).nunique()),
                   n_rows=int(len(ga) + len(gb)), same_text=_NAN,
                   clean_a=float(ca.mean()) if len(ca) else _NAN,
                   clean_b=float(cb.mean()) if len(cb) else _NAN,
                   perturbed_a=float(pa.mean()) if len(pa) else _NAN,
                   perturbed_b=float(pb.mean()) if len(pb) else _NAN, p_value=_NAN)
        ia, ib = ga["item_id"].to_numpy(), gb["item_id"].to_numpy()
        for name, va, vb in (("clean_change", ca, cb), ("perturbed_change", pa, pb),
                             ("drop_change", ca - pa, cb - pb)):
            low, high = _unpaired_ci(va, ia, vb, ib, rng=rng, n_boot=n_boot, ci=ci)
            row[f"{name}_ci_low_pp"], row[f"{name}_ci_high_pp"] = low * 100.0, high * 100.0
    row["clean_change_pp"] = (row["clean_b"] - row["clean_a"]) * 100.0
    row["perturbed_change_pp"] = (row["perturbed_b"] - row["perturbed_a"]) * 100.0
    row["drop_a_pp"] = (row["clean_a"] - row["perturbed_a"]) * 100.0
    row["drop_b_pp"] = (row["clean_b"] - row["perturbed_b"]) * 100.0
    row["drop_change_pp"] = row["drop_b_pp"] - row["drop_a_pp"]
    return row


def _clean_row(ra: pd.DataFrame, rb: pd.DataFrame, *, rng: np.random.Generator, n_boot: int,
               ci: float) -> dict[str, Any]:
    """Clean score change over the items both runs answered."""
    def clean(frame: pd.DataFrame) -> pd.DataFrame:
        c = frame.loc[(frame["spec"] == "clean") & frame["score"].notna(), ["item_id", "score",
                                                                             "input"]]
        return c.drop_duplicates("item_id")

    a, b = clean(ra), clean(rb)
    merged = a.merge(b, on="item_id", how="inner", suffixes=("_a", "_b"))
    row: dict[str, Any] = {"transform": CLEAN_ROW, "severity": _NAN, "spec": CLEAN_ROW,
                           "n_only_a": int(len(a) - len(merged)),
                           "n_only_b": int(len(b) - len(merged))}
    for column in ("perturbed_a", "perturbed_b", "perturbed_change_pp",
                   "perturbed_change_ci_low_pp", "perturbed_change_ci_high_pp", "drop_a_pp",
                   "drop_b_pp", "drop_change_pp", "drop_change_ci_low_pp",
                   "drop_change_ci_high_pp"):
        row[column] = _NAN
    if len(merged):
        sa, sb = merged["score_a"].to_numpy(float), merged["score_b"].to_numpy(float)
        low, high = bootstrap_ci(sb - sa, n_boot=n_boot, seed=rng, ci=ci)
        row.update(paired=True, n_items=int(len(merged)), n_rows=int(len(merged)),
                   same_text=float((merged["input_a"] == merged["input_b"]).mean()),
                   clean_a=float(sa.mean()), clean_b=float(sb.mean()),
                   clean_change_pp=float((sb - sa).mean()) * 100.0,
                   clean_change_ci_low_pp=low * 100.0, clean_change_ci_high_pp=high * 100.0,
                   p_value=_sign_test(merged["score_a"] >= 0.5, merged["score_b"] >= 0.5,
                                      merged["item_id"]))
    else:
        sa, sb = a["score"].to_numpy(float), b["score"].to_numpy(float)
        low, high = _unpaired_ci(sa, a["item_id"].to_numpy(), sb, b["item_id"].to_numpy(),
                                 rng=rng, n_boot=n_boot, ci=ci)
        ma = float(sa.mean()) if len(sa) else _NAN
        mb = float(sb.mean()) if len(sb) else _NAN
        row.update(paired=False, n_items=int(len(a) + len(b)), n_rows=int(len(a) + len(b)),
                   same_text=_NAN, clean_a=ma, clean_b=mb, clean_change_pp=(mb - ma) * 100.0,
                   clean_change_ci_low_pp=low * 100.0, clean_change_ci_high_pp=high * 100.0,
                   p_value=_NAN)
    return row


def compare_pair(results_a: pd.DataFrame, results_b: pd.DataFrame, *, model_a: str,
                 model_b: str, run_a: str = "A", run_b: str = "B", n_boot: int = 2000,
                 seed: int = 0, ci: float = 0.95) -> pd.DataFrame:
    """Compare one model of run A with one model of run B (see :func:`compare_runs`).

    Returns:
        Rows: ``clean`` (item-level clean scores), the pooled label-preserving row
        (:data:`ALL_PRESERVING`), then one row per transform x severity (may_break
        transforms included, never pooled), in the order they appear in run A (then B).
    """
    ra = results_a.loc[results_a["model"] == model_a]
    rb = results_b.loc[results_b["model"] == model_b]
    pa, pb = pair_with_clean(ra), pair_with_clean(rb)
    pa, pb = pa.loc[pa["paired"]], pb.loc[pb["paired"]]
    base = {"run_a": run_a, "run_b": run_b, "model_a": model_a, "model_b": model_b}
    rows = [{**base, **_clean_row(ra, rb, rng=group_rng(seed, (run_a, run_b, model_a, "clean")),
                                  n_boot=n_boot, ci=ci)}]
    keep_a = pa.loc[pa["label_policy"].isin(LABEL_PRESERVING)]
    keep_b = pb.loc[pb["label_policy"].isin(LABEL_PRESERVING)]
    if len(keep_a) or len(keep_b):
        stats = _group_row(keep_a, keep_b, rng=group_rng(seed, (run_a, run_b, model_a, "all")),
                           n_boot=n_boot, ci=ci)
        rows.append({**base, "transform": ALL_PRESERVING, "severity": _NAN, "spec": None,
                     **stats})
    groups: list[tuple[str, float]] = []
    for frame in (pa, pb):
        for key in zip(frame["transform"], frame["severity"]):
            if key not in groups:
                groups.append(key)
    for transform, severity in groups:
        ga = pa.loc[(pa["transform"] == transform) & (pa["severity"] == severity)]
        gb = pb.loc[(pb["transform"] == transform) & (pb["severity"] == severity)]
        specs = list(dict.fromkeys([*ga["spec"].astype(str), *gb["spec"].astype(str)]))
        rng = group_rng(seed, (run_a, run_b, model_a, transform, severity))
        stats = _group_row(ga, gb, rng=rng, n_boot=n_boot, ci=ci)
        rows.append({**base, "transform": transform, "severity": float(severity),
                     "spec": ",".join(specs), **stats})
    out = pd.DataFrame(rows)
    return out.reindex(columns=list(COMPARE_COLUMNS))


def _model_pairs(a: pd.DataFrame, b: pd.DataFrame, models: Mapping[str, str] | None,
                 label_a: str, label_b: str) -> list[tuple[str, str]]:
    ma, mb = list(pd.unique(a["model"])), list(pd.unique(b["model"]))
    if models:
        pairs = []
        for x, y in models.items():
            if x not in ma or y not in mb:
                raise ConfigError(f"--models {x}={y}: {label_a} has models {', '.join(ma)}; "
                                  f"{label_b} has {', '.join(mb)}")
            pairs.append((x, y))
        return pairs
    common = [m for m in ma if m in mb]
    if common:
        missing = [m for m in ma + mb if m not in common]
        if missing:
            log.info("models in only one run are not compared: %s", ", ".join(missing))
        return [(m, m) for m in common]
    if len(ma) == 1 and len(mb) == 1:
        return [(ma[0], mb[0])]
    raise ConfigError(f"{label_a} ({', '.join(ma)}) and {label_b} ({', '.join(mb)}) share no "
                      f"model; say which to compare with models={{'A': 'B'}} "
                      f"(CLI: --models A=B)")


def compare_runs(runs: Sequence[Any], labels: Sequence[str] | None = None, *,
                 consecutive: bool = False, models: Mapping[str, str] | None = None,
                 n_boot: int = 2000, seed: int = 0, ci: float = 0.95) -> pd.DataFrame:
    """Compare runs: each later run against the first (or against the one before it).

    Args:
        runs: Run folders, :class:`~robustify.pipeline.run.RunResult` objects or results frames;
            at least two.
        labels: Names of the runs (default: folder names, made unique).
        consecutive: Compare run i with run i-1 instead of with the first run (watch a
            model across a chain of releases).
        models: Explicit model matching ``{model label in A: model label in B}``.
        n_boot, seed, ci: Bootstrap over items, as in :mod:`robustify.analysis`.

    Returns:
        One row per run pair x model pair x group (:data:`COMPARE_COLUMNS`);
        ``attrs["notes"]`` lists what the reader should know (different data, seeds,
        specs, models left out).

    Raises:
        ConfigError: fewer than two runs, unreadable runs, no model to match.
    """
    if len(runs) < 2:
        raise ConfigError("compare needs at least two runs")
    loaded = [load_run(r) for r in runs]
    names = list(labels) if labels else [label for _, _, label in loaded]
    if len(names) != len(loaded):
        raise ConfigError(f"{len(names)} labels for {len(loaded)} runs")
    seen: dict[str, int] = {}
    for i, name in enumerate(names):  # two folders called "run" must stay apart
        if name in seen:
            seen[name] += 1
            names[i] = f"{name}#{seen[name]}"
        else:
            seen[name] = 1
    notes: list[str] = []
    frames = []
    for j in range(1, len(loaded)):
        i = j - 1 if consecutive else 0
        (ra, man_a, _), (rb, man_b, _) = loaded[i], loaded[j]
        notes += _manifest_notes(man_a, man_b, names[i], names[j])
        for model_a, model_b in _model_pairs(ra, rb, models, names[i], names[j]):
            frames.append(compare_pair(ra, rb, model_a=model_a, model_b=model_b,
                                       run_a=names[i], run_b=names[j], n_boot=n_boot,
                                       seed=seed, ci=ci))
        only = sorted(set(ra["model"]) ^ set(rb["model"]))
        if only and not models and set(ra["model"]) & set(rb["model"]):
            notes.append(f"{names[i]} vs {names[j]}: models in only one run are not compared: "
                         f"{', '.join(map(str, only))}")
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=list(COMPARE_COLUMNS))
    unpaired = out.loc[~out["paired"].astype(bool)]
    if len(unpaired):
        notes.append(f"{len(unpaired)} group(s) share no item and spec between the runs and "
                     f"are compared unpaired (wider intervals): "
                     + ", ".join(sorted({str(t) for t in unpaired["transform"]})))
    out.attrs["notes"] = notes
    return out


def _manifest_notes(a: Mapping[str, Any], b: Mapping[str, Any], name_a: str,
                    name_b: str) -> list[str]:
    notes = []
    if a.get("dataset_hash") and b.get("dataset_hash") and a["dataset_hash"] != b["dataset_hash"]:
        notes.append(f"{name_a} and {name_b} used different data: only items in both are "
                     f"paired")
    if "seed" in a and "seed" in b and a["seed"] != b["seed"]:
        notes.append(f"{name_a} (seed {a['seed']}) and {name_b} (seed {b['seed']}) drew "
                     f"different noise: rows are paired by item and spec, but the noisy texts "
                     f"differ (see same_text)")
    if a.get("specs") and b.get("specs") and set(a["specs"]) != set(b["specs"]):
        only = sorted(set(a["specs"]) ^ set(b["specs"]))
        notes.append(f"specs run in only one of {name_a}, {name_b}: {', '.join(only)}")
    va, vb = a.get("robustify_version"), b.get("robustify_version")
    if va and vb and va != vb:
        notes.append(f"{name_a} ran robustify {va}, {name_b} ran {vb}")
    return notes
