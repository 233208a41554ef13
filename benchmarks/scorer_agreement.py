"""How often the judge scorer agrees with the rule scorers, on the sample.

The rows: every short-answer and numeric item of the built-in sample (40 items) and
their variants, answered by a model (a fresh run with ``--model``, default
``local:smollm2``, or the rows of an existing run folder with ``--run DIR``). Each
answered row is graded by

* the rule scorers: ``exact``, ``normalized`` and the task kind's own scorer
  (``short_answer`` with aliases, ``numeric``);
* the judge (``--judge``, default ``local:smollm2``) in ``generate`` mode (it writes
  CORRECT/INCORRECT; unparseable replies counted apart) and in ``loglik`` mode (the
  likelier verdict word);
* H8's ``similarity`` scorer when it is installed (skipped with a message otherwise).

Agreement is the share of rows both scorers graded where they give the same verdict (a
rule score >= 0.5 counts as right); Cohen's kappa corrects it for the agreement two
scorers reach by chance with their right-rates (a judge that says CORRECT to everything
agrees often with a model that is mostly right, and has kappa 0). A second block does
the same for the consistency rubric: each variant's answer against the model's own clean
answer (``SAME``/``DIFFERENT``), against the rule "the normalised answers are equal" (on
all variant rows, and on the rows the judge was asked: an answer identical to the clean
one is ``SAME`` without a call) and against ``similarity``.

Judge calls go through the response cache (``--cache``), so a rerun is free.
Run: ``python -m benchmarks.scorer_agreement [--run DIR] [--judge SPEC] [--limit N]``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

from benchmarks.common import ROOT  # noqa: F401  (puts the repo on sys.path)

__all__ = ["agreement", "rule_scores", "measure", "main"]

KINDS = ("short_answer", "numeric")
RULES = ("exact", "normalized", "task")


def agreement(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Agreement and Cohen's kappa of two score lists (NaN rows left out; >= 0.5 is right)."""
    pairs = [(x >= 0.5, y >= 0.5) for x, y in zip(a, b)
             if not (math.isnan(x) or math.isnan(y))]
    n = len(pairs)
    if not n:
        return {"n": 0, "agreement": None, "kappa": None, "right_a": None, "right_b": None}
    agree = sum(x == y for x, y in pairs) / n
    pa = sum(x for x, _ in pairs) / n
    pb = sum(y for _, y in pairs) / n
    chance = pa * pb + (1 - pa) * (1 - pb)
    kappa = (agree - chance) / (1 - chance) if chance < 1 else None
    return {"n": n, "agreement": round(agree, 4),
            "kappa": round(kappa, 4) if kappa is not None else None,
            "right_a": round(pa, 4), "right_b": round(pb, 4)}


def _items():
    from robustify.data import load_items

    return {item.id: item for item in load_items("sample") if item.task in KINDS}


def _answers(args: argparse.Namespace, tmp: Path):
    """The results frame: from ``--run`` or a fresh run (rule scores by task kind)."""
    import pandas as pd

    if args.run:
        frame = pd.read_csv(Path(args.run) / "results.csv", keep_default_na=False,
                            na_values={"score": ["", "nan"], "error": [""]},
                            dtype={"input": str, "target": str, "response": str})
        return frame[frame["task"].isin(KINDS)].reset_index(drop=True)
    from robustify.pipeline.run import evaluate

    data = tmp / "short_numeric.jsonl"
    items = list(_items().values())[: args.limit]
    data.write_text("".join(json.dumps(i.to_dict()) + "\n" for i in items))
    result = evaluate(data=str(data), models=[args.model], transforms=args.transforms,
                      cache=args.cache, write=False, progress=False)
    return result.results


def _answer(row: Any) -> str | None:
    """The row's answer text, or ``None`` when its call failed."""
    failed = isinstance(row.error, str) and bool(row.error)
    return row.response if isinstance(row.response, str) and not failed else None


def rule_scores(frame, items: dict[str, Any]) -> dict[str, list[float]]:
    """Per rule scorer, the score of every row (NaN for failed answers)."""
    import dataclasses

    from robustify.scoring import score_answer

    out: dict[str, list[float]] = {name: [] for name in RULES}
    for row in frame.itertuples(index=False):
        item = dataclasses.replace(items[row.item_id], input=row.input, target=row.target)
        text = _answer(row)
        for name in RULES:
            out[name].append(score_answer(item, text, scorer=None if name == "task" else name)
                             .value)
    return out


def _similarity(frame, items) -> list[float] | None:
    import dataclasses

    from robustify.scoring import score_answer, scorer_names

    if "similarity" not in scorer_names():
        try:
            import robustify.scoring.similarity  # noqa: F401  (registers it, when present)
        except ImportError:
            return None
    out = []
    for row in frame.itertuples(index=False):
        item = dataclasses.replace(items[row.item_id], input=row.input, target=row.target)
        out.append(score_answer(item, _answer(row), scorer="similarity").value)
    return out


def _judge(frame, spec: str, mode: str, cache: Any) -> tuple[list[float], dict[str, Any]]:
    from robustify.runner.judge import build_judge, judge_results
    from robustify.scoring.judge import JudgeConfig

    config = JudgeConfig(spec=spec, mode=mode)
    backend = build_judge(config)
    try:
        graded, facts = judge_results(frame, backend, config, cache=cache, progress=False)
    finally:
        backend.close()
    facts.pop("rubrics", None)
    return [float(s) for s in graded["score"]], facts


def _consistency_frame(frame):
    """Variant rows whose reference is the model's clean answer to the same item."""
    clean = frame[frame["spec"] == "clean"].set_index(["model", "item_id"])["response"]
    rows = frame[frame["spec"] != "clean"].copy()
    rows["target"] = [clean.get((m, i)) for m, i in zip(rows["model"], rows["item_id"])]
    rows = rows[rows["target"].map(lambda t: isinstance(t, str) and bool(t.strip()))]
    rows["meta.reference"] = "clean_answer"
    return rows.reset_index(drop=True)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Grade the rows every way and compare; returns the figures (printed by :func:`main`)."""
    from robustify.runner.cache import open_cache
    from robustify.scoring import normalize_text  # the rule of "the same answer"

    items = _items()
    cache, _ = open_cache(Path(args.cache)) if args.cache != "off" else (None, None)
    report: dict[str, Any] = {"judge": args.judge, "gold": {}, "consistency": {}}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            frame = _answers(args, Path(tmp))
        frame = frame[frame["item_id"].isin(items)].reset_index(drop=True)
        report["rows"] = len(frame)
        rules = rule_scores(frame, items)
        similarity = _similarity(frame, items)
        if similarity is None:
            print("similarity scorer not installed (robustify.scoring.similarity): skipped",
                  file=sys.stderr)
        consistency = _consistency_frame(frame)
        same = [1.0 if normalize_text(str(a)) == normalize_text(str(b)) else 0.0
                for a, b in zip(consistency["response"], consistency["target"])]
        report["consistency_rows"] = len(consistency)
        # rows the judge pass decides without a call (the answer is the clean answer)
        called = [str(a).strip() != str(b).strip()
                  for a, b in zip(consistency["response"], consistency["target"])]
        c_similarity = (_similarity(consistency, items) if similarity is not None else None)
        for mode in args.modes:
            scores, facts = _judge(frame, args.judge, mode, cache)
            block = {"facts": facts}
            for name in RULES:
                block[name] = agreement(scores, rules[name])
            if similarity is not None:
                block["similarity"] = agreement(scores, similarity)
            report["gold"][mode] = block
            c_scores, c_facts = _judge(consistency, args.judge, mode, cache)
            block = {"facts": c_facts, "normalized_equal": agreement(c_scores, same),
                     "normalized_equal_called": agreement(
                         [x for x, k in zip(c_scores, called) if k],
                         [x for x, k in zip(same, called) if k])}
            if c_similarity is not None:
                block["similarity"] = agreement(c_scores, c_similarity)
            report["consistency"][mode] = block
        if similarity is not None:
            report["similarity_vs_rules"] = {n: agreement(similarity, rules[n]) for n in RULES}
    finally:
        if cache is not None:
            cache.close()
    return report


def _print(report: dict[str, Any]) -> None:
    print(f"rows: {report['rows']} answered short-answer/numeric rows "
          f"(consistency: {report['consistency_rows']} variant rows); judge {report['judge']}")
    print(f"{'judge mode':10} {'vs':26} {'n':>4} {'agree':>6} {'kappa':>6} "
          f"{'judge right':>11} {'other right':>11}")
    for form in ("gold", "consistency"):
        for mode, block in report[form].items():
            for name, a in block.items():
                if name == "facts":
                    continue
                fmt = (lambda v: "-" if v is None else f"{v:.2f}")
                print(f"{mode:10} {form[:4] + ':' + name:26} {a['n']:>4} "
                      f"{fmt(a['agreement']):>6} {fmt(a['kappa']):>6} "
                      f"{fmt(a['right_a']):>11} {fmt(a['right_b']):>11}")
            f = block["facts"]
            print(f"{'':10} unparseable {f['unparseable']}, failed {f['failed']}, "
                  f"calls {f['calls']}, cache hits {f['cache_hits']}, verdicts {f['verdicts']}")
    for name, a in (report.get("similarity_vs_rules") or {}).items():
        print(f"similarity vs {name}: n {a['n']}, agreement {a['agreement']}, "
              f"kappa {a['kappa']}")


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print the agreement rates (``--json FILE`` also writes them)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--run", help="a run folder whose results.csv holds the answers")
    p.add_argument("--model", default="local:smollm2", help="answering model (fresh run)")
    p.add_argument("--transforms", default="typos@high,slang@high",
                   help="transforms of the fresh run")
    p.add_argument("--limit", type=int, default=40, help="items of the fresh run (<= 40)")
    p.add_argument("--judge", default="local:smollm2", help="the judge's model spec")
    p.add_argument("--modes", default="generate,loglik", help="judge modes to measure")
    p.add_argument("--cache", default=str(Path.home() / ".cache/robustify/responses.sqlite"),
                   help="response cache, or 'off'")
    p.add_argument("--json", help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    report = measure(args)
    _print(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
