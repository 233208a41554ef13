"""The leakage probe's charts and its report (leakage.html, leakage.md, CSVs, JSON).

The report is a :class:`~robustify.reporting.document.Document`: every text escaped, no
script, charts embedded; it says first that its figures are *signals, not proof*.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pandas as pd

from perturbations.errors import ConfigError

from robustify.atomic import write_text_atomic
from robustify.probes.leakage.stats import GROUPS
from robustify.reporting.charts import figure_bytes
from robustify.reporting.document import Document
from robustify.reporting.format import pct, pp, pvalue, short
from robustify.reporting.format import ci as fmt_ci
from robustify.reporting.plots import axes_or_new, series_style
from robustify.reporting.results_io import write_results_jsonl

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from robustify.probes.leakage.result import LeakageResult

__all__ = ["SIGNALS_NOT_PROOF", "plot_suspects", "plot_completion", "write_leakage_report"]

# ------------------------------------------------------------------------ charts

def plot_suspects(summary: pd.DataFrame, ax: "Axes | None" = None, *,
                  title: str | None = None) -> "Axes":
    """Memorisation suspects per model against the chance band.

    One row per model: the dot is the share of items right verbatim and wrong on every
    rewrite, with its Wilson interval; the grey band runs from 0 to the 95th percentile
    of the share chance alone would give, and the bar inside it marks the expected
    chance share. A dot right of the band is a memorisation *signal*.

    Args:
        summary: Output of :func:`~robustify.probes.leakage.stats.verbatim_summary`.
        ax: Axes to draw on; a new figure when ``None``.
        title: Overrides the default title.

    Returns:
        The Axes.
    """
    needed = ("model", "suspect_rate", "ci_low", "ci_high", "chance_rate", "chance_high")
    missing = [c for c in needed if c not in summary.columns]
    if missing:
        raise ConfigError(f"plot_suspects needs column(s) {', '.join(missing)}; pass the "
                          f"output of verbatim_summary")
    n = len(summary)
    ax = axes_or_new(ax, (7.0, 1.2 + 0.6 * max(n, 1)))
    for i, row in enumerate(summary.itertuples(index=False)):
        y = n - 1 - i
        ax.add_patch(_rect(0.0, y - 0.3, row.chance_high * 100.0, 0.6))
        ax.plot([row.chance_rate * 100.0] * 2, [y - 0.3, y + 0.3], color="#555555", lw=2,
                label="expected by chance" if i == 0 else None)
        style = series_style(i)
        ax.errorbar([row.suspect_rate * 100.0], [y],
                    xerr=[[max(0.0, (row.suspect_rate - row.ci_low) * 100.0)],
                          [max(0.0, (row.ci_high - row.suspect_rate) * 100.0)]],
                    fmt=style["marker"], color=style["color"], capsize=4, ms=8,
                    label="suspect share (95% CI)" if i == 0 else None)
        ax.annotate(f"{row.suspect_rate * 100:.1f}%", (row.suspect_rate * 100.0, y),
                    textcoords="offset points", xytext=(0, 9), ha="center", fontsize=8)
    ax.set_yticks(list(range(n)))
    ax.set_yticklabels([textwrap.fill(str(m), 28, break_long_words=True)
                        for m in summary["model"]][::-1], fontsize=8)
    ax.set_ylim(-0.7, n - 0.3)
    top = max([5.0, *(summary["ci_high"].fillna(0) * 100.0 + 5.0),
               *(summary["chance_high"].fillna(0) * 100.0 + 5.0)])
    ax.set_xlim(0, min(100.0, top))
    ax.set_xlabel("items right verbatim, wrong on every rewrite (%)")
    ax.set_title(title or "Memorisation suspects vs chance", fontsize=10)
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return ax


def _rect(x: float, y: float, width: float, height: float) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), width, height, color="#d9d9d9", zorder=0)


def plot_completion(summary: pd.DataFrame, ax: "Axes | None" = None, *,
                    metric: str = "ngram_overlap", title: str | None = None) -> "Axes":
    """Completion-probe reproduction per group (benchmark vs its controls), per model.

    Grouped bars: one group per probe group (benchmark items, their word-shuffled
    controls, fresh unseen items, famous texts), one bar per model, height = mean
    ``metric`` in percent with its bootstrap interval. Benchmark bars well above the
    shuffled and fresh bars, near the famous-text bar, are a leakage signal.

    Args:
        summary: Output of :func:`~robustify.probes.leakage.stats.completion_summary`.
        ax: Axes to draw on; a new figure when ``None``.
        metric: ``ngram_overlap`` or ``similarity``.
        title: Overrides the default title.
    """
    key = {"ngram_overlap": "ngram", "similarity": "similarity"}.get(metric)
    if key is None:
        raise ConfigError(f"metric must be ngram_overlap or similarity, got {metric!r}")
    for column in ("model", "group", metric):
        if column not in summary.columns:
            raise ConfigError(f"plot_completion needs column {column!r}; pass the output of "
                              f"completion_summary")
    groups = [g for g in GROUPS if g in set(summary["group"])]
    models = list(pd.unique(summary["model"]))
    ax = axes_or_new(ax, (7.0, 3.8))
    width = 0.8 / max(1, len(models))
    top = 0.0
    for m, model in enumerate(models):
        style = series_style(m)
        sub = summary.loc[summary["model"] == model].set_index("group")
        xs, heights, lows, highs = [], [], [], []
        for gi, group in enumerate(groups):
            if group not in sub.index:
                continue
            row = sub.loc[group]
            xs.append(gi - 0.4 + width * (m + 0.5))
            value = float(row[metric]) * 100.0
            heights.append(value)
            lows.append(max(0.0, value - float(row[f"{key}_ci_low"]) * 100.0))
            highs.append(max(0.0, float(row[f"{key}_ci_high"]) * 100.0 - value))
        ax.bar(xs, heights, width=width * 0.95, color=style["color"], hatch=style["hatch"],
               edgecolor="white", label=str(model), yerr=[lows, highs], capsize=3)
        for x, h, hi in zip(xs, heights, highs):
            ax.annotate(f"{h:.1f}%", (x, h + hi), textcoords="offset points", xytext=(0, 3),
                        ha="center", fontsize=7)
            top = max(top, h + hi)
    labels = {"benchmark": "benchmark items", "shuffled": "same words shuffled",
              "fresh": "fresh items (unseen)", "known": "famous texts (seen)"}
    ax.set_xticks(list(range(len(groups))))
    ax.set_xticklabels([labels[g] for g in groups])
    # small values must stay visible: scale to the data, never past 100%
    ax.set_ylim(0, min(100.0, max(5.0, top * 1.25)))
    what = "word n-grams of the true remainder reproduced" if metric == "ngram_overlap" \
        else "similarity to the true remainder"
    ax.set_ylabel(f"{what} (%)")
    ax.set_title(title or "Completion probe: benchmark items vs controls")
    if len(models) > 1:
        ax.legend(fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return ax


SIGNALS_NOT_PROOF = (
    "These figures are signals, not proof. A model can be right only on the verbatim "
    "wording because a rewrite happened to be harder or clumsier, and it can continue a "
    "text because the text is predictable. Read them as 'worth a closer look', never as a "
    "finding of contamination on their own.")

_GROUP_LABELS = {"benchmark": "benchmark items", "shuffled": "same words shuffled (unseen)",
                 "fresh": "fresh items (unseen)",
                 "known": "famous texts (seen: positive control)"}


def _with_ci(fmt: Callable[[Any], str], value: Any, low: Any, high: Any) -> str:
    """A value and its interval in one cell: ``12.5% [8.1%, 17.0%]``."""
    return f"{fmt(value)} [{fmt(low)}, {fmt(high)}]"


def _verbatim_section(doc: Document, result: "LeakageResult", top: int) -> None:
    vs, s = result.verbatim_summary, result.settings
    if not len(vs):
        return
    doc.heading("Verbatim against rewritten")
    for row in vs.to_dict("records"):
        verdict = ("more items than chance would give: a memorisation signal"
                   if row["signal"] else "no more than chance would give")
        doc.para(f"{row['model']}: {row['n_suspects']} of {row['n_items']} items "
                 f"({pct(row['suspect_rate'])}, 95% CI {pct(row['ci_low'])} to "
                 f"{pct(row['ci_high'])}) are right verbatim and wrong on every "
                 f"rewrite; chance alone would give {pct(row['chance_rate'])} "
                 f"(95% of chance outcomes at or below {pct(row['chance_high'])}), "
                 f"p = {pvalue(row['p_value'])}: {verdict}.")
    doc.table(["model", "items", "verbatim acc.", "rewrite acc.", "rewrites", "suspects",
               "suspect share (95% CI)", "share of right items", "chance", "chance 95th pct",
               "excess pp (95% CI)", "p"],
              [[r["model"], r["n_items"], pct(r["verbatim_accuracy"]),
                pct(r["rewrite_accuracy"]), r["n_rewrites"], r["n_suspects"],
                _with_ci(pct, r["suspect_rate"], r["ci_low"], r["ci_high"]),
                pct(r["suspect_share_of_right"]), pct(r["chance_rate"]), pct(r["chance_high"]),
                f"{pp(r['excess_pp'])} {fmt_ci(r['excess_ci_low_pp'], r['excess_ci_high_pp'])}",
                pvalue(r["p_value"])]
               for r in vs.to_dict("records")], numeric=range(1, 12))
    doc.figure("leakage_suspects",
               figure_bytes(lambda fig: plot_suspects(vs, ax=fig.subplots()),
                            (7.0, 1.4 + 0.6 * len(vs))),
               "Memorisation suspects per model against the chance band",
               "Dot: share of items right verbatim and wrong on every rewrite (Wilson 95% "
               "CI). Grey band: 0 to the 95th percentile of the share chance would give "
               "(within-item permutation); dark bar: its expected value.")
    doc.para(
        "Method: each item is asked verbatim and in meaning-preserving rewrites "
        f"({', '.join(s.get('rewrites', []))}; rewrites that change nothing are not "
        "asked). A suspect is right verbatim and wrong on all k of its rewrites. Chance "
        "baseline: if 'verbatim' were a label stuck at random on one of the item's k+1 "
        "versions, an item with exactly one right version is a suspect with probability "
        "1/(k+1), any other item never; the suspect count is then Poisson-binomial, "
        "which gives the expected share, the 95th percentile and an exact one-sided "
        "p-value. Rewrites that are harder than the original raise the count as well, "
        "so treat suspects as leads.", "note")
    sus = result.suspects(top)
    if len(sus):
        doc.heading("Most suspect items", 3)
        doc.table(["model", "item", "rewrites (all wrong)", "completion overlap",
                   "verbatim answer", "rewrite answers", "question", "a rewrite [spec]"],
                  [[r["model"], r["item_id"], r["n_rewrites"],
                    pct(r.get("completion_overlap")), short(r["verbatim_parsed"], 40),
                    short(r["rewrite_parsed"], 60), short(r["input"]),
                    short(r["rewrite_input"])] for r in sus.to_dict("records")],
                  numeric=(2, 3))


def _completion_section(doc: Document, result: "LeakageResult", top: int) -> None:
    cs, s = result.completion_summary, result.settings
    if not len(cs):
        return
    doc.heading("Completion probe")
    for row in cs.loc[cs["group"] == "benchmark"].to_dict("records"):
        doc.para(f"{row['model']}: given {s.get('cut_text', 'about half')} of each item, "
                 f"it reproduced {pct(row['ngram_overlap'])} of the remainder's word "
                 f"{s.get('ngram', 3)}-grams; {pp(row.get('excess_ngram_pp'))} pp "
                 f"(95% CI {pp(row.get('excess_ngram_ci_low_pp'))} to "
                 f"{pp(row.get('excess_ngram_ci_high_pp'))}) more than on the same "
                 f"words shuffled. {pct(row['reproduced_rate'])} of items had at least "
                 f"half of the remainder's n-grams come back.")
    doc.table(["model", "group", "n", "n-gram overlap (95% CI)", "similarity (95% CI)",
               "exact leading words", "reproduced", "excess vs shuffled, pp (95% CI)"],
              [[r["model"], _GROUP_LABELS.get(r["group"], r["group"]), r["n"],
                _with_ci(pct, r["ngram_overlap"], r["ngram_ci_low"], r["ngram_ci_high"]),
                _with_ci(pct, r["similarity"], r["similarity_ci_low"], r["similarity_ci_high"]),
                pct(r["exact_prefix"]), pct(r["reproduced_rate"]),
                (f"{pp(r.get('excess_ngram_pp'))} "
                 f"{fmt_ci(r.get('excess_ngram_ci_low_pp'), r.get('excess_ngram_ci_high_pp'))}"
                 if r["group"] == "benchmark" else "")]
               for r in cs.to_dict("records")], numeric=(2, 3, 4, 5, 6, 7))
    doc.figure("leakage_completion",
               figure_bytes(lambda fig: plot_completion(cs, ax=fig.subplots()), (7.5, 4.0)),
               "Completion probe: share of the true remainder reproduced, per group",
               "Bars: mean share of the remainder's word n-grams the continuation "
               "reproduced (bootstrap 95% CI over items). Benchmark items far above their "
               "shuffled and fresh controls are a signal of leakage.")
    doc.para(
        "Method: the model sees the first part of each item's text (question and, for "
        "multiple choice, the options; the cut is drawn per item in "
        f"{s.get('cut_text', '40-60%')} of the words, seeded) and is asked to continue. "
        "An echo of the given text is removed; then the share of the true remainder's "
        "word n-grams found in the continuation, the leading words reproduced exactly "
        "and a character similarity (rapidfuzz ratio) are measured. Controls: the same "
        "item's words shuffled (cut at the same word, paired), fresh items written for "
        "this project, and famous public-domain texts as a positive control.", "note")
    items = result.completion_items
    bench = items.loc[(items["group"] == "benchmark") & items["ngram_overlap"].notna()]
    if len(bench):
        doc.heading("Items whose remainder came back most", 3)
        shown = bench.sort_values(["ngram_overlap", "similarity"], ascending=False,
                                  kind="mergesort").groupby("model", sort=False).head(top)
        doc.table(["model", "item", "n-gram overlap", "similarity", "shown", "true remainder",
                   "continuation"],
                  [[r["model"], r["item_id"], pct(r["ngram_overlap"]), pct(r["similarity"]),
                    short(r["prefix"], 100), short(r["remainder"], 100),
                    short(r["continuation"], 140)] for r in shown.to_dict("records")],
                  numeric=(2, 3))


def write_leakage_report(result: "LeakageResult", out_dir: str | os.PathLike[str], *,
                         top: int = 10) -> dict[str, Path]:
    """Write the probe's report into ``out_dir`` (a run folder or a folder of its own).

    Files (each written atomically; nothing else in the folder is touched):
    ``leakage.html`` (self-contained, escaped, no script), ``leakage.md``,
    ``charts/leakage_suspects.png``, ``charts/leakage_completion.png``,
    ``leakage_items.csv`` (verbatim probe per item), ``leakage_completion.csv``,
    ``leakage_summary.json`` (both summaries, settings and notes) and
    ``leakage_rows.jsonl`` (every model answer).

    Args:
        result: What :func:`~robustify.probes.leakage.probe_leakage` returned.
        out_dir: The folder (created if needed).
        top: Items listed per model in the "most suspect" tables.

    Returns:
        Paths by key: ``html``, ``md``, ``chart_<name>_png``, ``items_csv``,
        ``completion_csv``, ``summary_json``, ``rows_jsonl``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    s = result.settings
    doc = Document(f"Leakage probe: {s.get('data', 'data')}")
    doc.para(SIGNALS_NOT_PROOF, "headline")
    _verbatim_section(doc, result, top)
    _completion_section(doc, result, top)
    if result.rewrite_rejections is not None and len(result.rewrite_rejections):
        doc.heading("Rejected model-written rewrites", 3)
        doc.table(["item", "rewrite spec", "reason", "text"],
                  [[r["item_id"], r["spec"], r["reason"], short(r["rewrite"], 120)]
                   for r in result.rewrite_rejections.to_dict("records")])
    if result.notes:
        doc.heading("Notes", 3)
        for note in result.notes:
            doc.para(note, "note")
    doc.heading("Settings", 3)
    doc.table(["setting", "value"], [[k, v if isinstance(v, str) else json.dumps(v, default=str)]
                                     for k, v in s.items()])
    files = doc.write(out, "leakage")
    files["items_csv"] = write_text_atomic(out / "leakage_items.csv",
                                           result.verbatim_items.to_csv(index=False))
    files["completion_csv"] = write_text_atomic(out / "leakage_completion.csv",
                                                result.completion_items.to_csv(index=False))
    summary = {"settings": s, "notes": result.notes,
               "verbatim": json.loads(result.verbatim_summary.to_json(orient="records")),
               "completion": json.loads(result.completion_summary.to_json(orient="records"))}
    files["summary_json"] = write_text_atomic(
        out / "leakage_summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    files["rows_jsonl"] = write_results_jsonl(result.rows, out / "leakage_rows.jsonl")
    return files
