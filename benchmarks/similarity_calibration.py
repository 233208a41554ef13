"""How often the similarity scorers agree with the rule scorers, and where their thresholds sit.

Three measurements, each for ``similarity`` (lexical) and, when the ``embed`` extra is
installed, ``similarity_embed``:

1. **Consistency pairs from the sample** (committed: ``reports/example/results.csv``, the
   real SmolLM2 answers of the example report). Each pair is a model's answer to a clean
   item and its answer to a perturbed copy. The reference verdict is the rule scorer's:
   "same" when the task's own scorer extracted the same answer from both (and neither was
   unparseable). Agreement = share of pairs where the similarity scorer, comparing the
   variant answer with the clean answer, says the same.
2. **Gold pairs from the sample**: each answer against its gold target, the similarity
   verdict against the rule scorer's right/wrong (``score == 1``), per task kind.
3. **Human-rated paraphrase pairs** (``--pairs FILE``, not committed): STS Benchmark rows
   as tab-separated ``id, sentence1, sentence2, score`` (score 0-5); "same meaning" is a
   score >= 4. The sweep prints accuracy, the share of same pairs found (TPR) and of
   different pairs rejected (TNR) per threshold.

4. **Agreement with the judge** (``--judge SPEC``, needs the judge scorer of issue 20):
   the consistency pairs whose two answers differ in text go to the judge's
   ``clean_answer`` rubric (identical answers are SAME without a call, as in a real run);
   each similarity scorer's verdict is compared with the judge's on the pairs it could
   read, and the judge's own agreement with the rule scorers is printed beside it. Judge
   answers go to the response cache (``--judge-cache``, default robustify's own), so a
   rerun makes no call.

Run: ``python -m benchmarks.similarity_calibration [--pairs stsb.tsv] [--sweep]
[--judge local:smollm2 [--judge-mode loglik] [--judge-limit N]]``.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Iterable, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from robustify.scoring.similarity import LEXICAL_THRESHOLD, Measure, _compare, _token_sort  # noqa: E402

__all__ = ["Pair", "sample_consistency_pairs", "sample_gold_pairs", "read_sts_pairs",
           "agreement", "measures", "judge_verdicts", "main"]

RESULTS = ROOT / "reports" / "example" / "results.csv"
Pair = tuple[str, str, bool, str, str]
"""``(answer, reference, same_by_reference_verdict, group, question)``."""


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def sample_consistency_pairs(path: Path = RESULTS) -> list[Pair]:
    """Variant answer vs clean answer, "same" when the task scorer parsed the same answer."""
    rows = _rows(path)
    clean = {(r["model"], r["item_id"]): r for r in rows if r["spec"] == "clean"}
    pairs = []
    for row in rows:
        ref = clean.get((row["model"], row["item_id"]))
        if row["spec"] == "clean" or ref is None:
            continue
        if not row["response"].strip() or not ref["response"].strip():
            continue
        same = (row["parsed"] == ref["parsed"] and row["unparseable"] == "False"
                and ref["unparseable"] == "False")
        pairs.append((row["response"], ref["response"], same, row["task"], ref["input"]))
    return pairs


def sample_gold_pairs(path: Path = RESULTS) -> list[Pair]:
    """Every answer vs its gold target, "same" when the rule scorer marked it right."""
    return [(r["response"], r["target"], float(r["score"] or 0) == 1.0, r["task"], r["input"])
            for r in _rows(path) if r["response"].strip() and r["score"] not in ("", "nan")]


def read_sts_pairs(path: Path, same_from: float = 4.0) -> list[Pair]:
    """STS Benchmark rows (``id, s1, s2, score``): same meaning when score >= ``same_from``."""
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split("\t")
        if len(fields) != 4:
            raise SystemExit(f"{path}:{number}: expected 4 tab-separated fields, got {len(fields)}")
        pairs.append((fields[1], fields[2], float(fields[3]) >= same_from, "sts", ""))
    return pairs


def measures() -> dict[str, tuple[Measure, float]]:
    """Scorer name -> (measure, threshold); the embedding one only with the extra."""
    out: dict[str, tuple[Measure, float]] = {"similarity": (_token_sort, LEXICAL_THRESHOLD)}
    try:
        from robustify.scoring.similarity_embed import EMBED_THRESHOLD, _cosine, require_embed_extra

        require_embed_extra()
        out["similarity_embed"] = (_cosine, EMBED_THRESHOLD)
    except Exception as exc:  # the extra is optional: say why it is skipped
        print(f"(similarity_embed skipped: {exc})")
    return out


def _raw(pairs: Sequence[Pair], measure: Measure) -> list[tuple[float, bool]]:
    return [(ratio, veto is None) for ratio, veto in
            (_compare(answer, ref, measure) for answer, ref, *_ in pairs)]


def agreement(pairs: Sequence[Pair], raw: Sequence[tuple[float, bool]],
              threshold: float) -> dict[str, float]:
    """Agreement with the reference verdicts, TPR (same found) and TNR (different rejected)."""
    said = [ok and round(ratio, 4) >= threshold for ratio, ok in raw]
    gold = [same for _, _, same, *_ in pairs]
    n_same = sum(gold)
    n_diff = len(gold) - n_same
    return {
        "n": len(gold),
        "agreement": sum(s == g for s, g in zip(said, gold)) / max(len(gold), 1),
        "tpr": sum(s and g for s, g in zip(said, gold)) / n_same if n_same else float("nan"),
        "tnr": sum(not s and not g for s, g in zip(said, gold)) / n_diff if n_diff else float("nan"),
    }


def _line(name: str, stats: dict[str, float]) -> str:
    return (f"{name:44s} n={stats['n']:5d}  agreement={stats['agreement']:.3f}  "
            f"tpr={stats['tpr']:.3f}  tnr={stats['tnr']:.3f}")


def _report(title: str, pairs: Sequence[Pair], scorers: dict[str, tuple[Measure, float]],
            sweep: Iterable[float] = (), by_group: bool = False) -> None:
    print(f"\n## {title}")
    groups = sorted({pair[3] for pair in pairs})
    for name, (measure, threshold) in scorers.items():
        raw = _raw(pairs, measure)
        print(_line(f"{name} @ {threshold}", agreement(pairs, raw, threshold)))
        for value in sweep:
            print(_line(f"  {name} @ {value:.2f}", agreement(pairs, raw, value)))
        if by_group:
            for group in groups:
                keep = [i for i, p in enumerate(pairs) if p[3] == group]
                print(_line(f"  {name} @ {threshold} [{group}]",
                            agreement([pairs[i] for i in keep], [raw[i] for i in keep],
                                      threshold)))


def judge_verdicts(pairs: Sequence[Pair], spec: str, mode: str, cache_path: Path
                   ) -> tuple[list[float], dict]:
    """The judge's verdict per pair (1.0 same, 0.0 different, NaN unreadable or failed)."""
    import pandas as pd

    from robustify.runner.cache import ResponseCache

    try:
        from robustify.runner.judge import build_judge, judge_results
        from robustify.scoring.judge import parse_judge_scorer
    except ImportError as exc:
        raise SystemExit(f"--judge needs the judge scorer (judge:SPEC), not installed: {exc}")

    config = parse_judge_scorer(f"judge:{spec}", {"mode": mode})
    frame = pd.DataFrame({
        "response": [p[0] for p in pairs], "error": [None] * len(pairs),
        "target": [p[1] for p in pairs], "input": [p[4] for p in pairs],
        "meta.reference": ["clean_answer"] * len(pairs),
        "score": [float("nan")] * len(pairs), "score_detail": [""] * len(pairs)})
    cache = ResponseCache(cache_path)
    try:
        judged, facts = judge_results(frame, build_judge(config), config, cache=cache)
    finally:
        cache.close()
    return [float(v) for v in judged["score"]], facts


def _report_judge(pairs: Sequence[Pair], scorers: dict[str, tuple[Measure, float]],
                  spec: str, mode: str, cache_path: Path) -> None:
    verdicts, facts = judge_verdicts(pairs, spec, mode, cache_path)
    read = [i for i, v in enumerate(verdicts) if v == v]  # NaN: unreadable or failed
    print(f"\n## agreement with judge:{spec} (mode {mode}) on {len(pairs)} consistency pairs "
          f"whose answers differ in text; calls {facts['calls']}, cache hits "
          f"{facts['cache_hits']}, unparseable {facts['unparseable']}, failed {facts['failed']}")
    as_judged = [(p[0], p[1], verdicts[i] == 1.0, p[3], p[4])
                 for i, p in ((i, pairs[i]) for i in read)]
    rule = [pairs[i][2] for i in read]
    judge_vs_rule = sum((verdicts[i] == 1.0) == r for i, r in zip(read, rule)) / max(len(read), 1)
    same_share = sum(verdicts[i] == 1.0 for i in read) / max(len(read), 1)
    print(f"{'judge vs the rule scorers':44s} n={len(read):5d}  agreement={judge_vs_rule:.3f}  "
          f"judge said same={same_share:.3f}  rule said same="
          f"{sum(rule) / max(len(rule), 1):.3f}")
    for name, (measure, threshold) in scorers.items():
        raw = _raw(as_judged, measure)
        print(_line(f"{name} @ {threshold} vs the judge", agreement(as_judged, raw, threshold)))


def main(argv: Sequence[str] | None = None) -> None:
    """Print the three measurements."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, help="STS Benchmark rows: id, s1, s2, score (TSV)")
    parser.add_argument("--sweep", action="store_true", help="also try thresholds 0.60-0.95")
    parser.add_argument("--judge", metavar="SPEC", help="also compare with this judge model")
    parser.add_argument("--judge-mode", default="generate", choices=("generate", "loglik"))
    parser.add_argument("--judge-limit", type=int, default=0,
                        help="judge only the first N differing pairs (0: all)")
    parser.add_argument("--judge-cache", type=Path,
                        help="response cache file (default: robustify's default cache)")
    args = parser.parse_args(argv)
    scorers = measures()
    sweep = [0.6 + 0.05 * i for i in range(8)] if args.sweep else []
    _report("consistency pairs from the sample (vs the rule scorers' parsed answers)",
            sample_consistency_pairs(), scorers, sweep, by_group=True)
    _report("gold pairs from the sample (vs the rule scorers' right/wrong)",
            sample_gold_pairs(), scorers, by_group=True)
    if args.pairs:
        _report(f"human-rated pairs {args.pairs} (same meaning = score >= 4)",
                read_sts_pairs(args.pairs), scorers, sweep)
    if args.judge:
        differing = [p for p in sample_consistency_pairs() if p[0].strip() != p[1].strip()]
        if args.judge_limit:
            differing = differing[:args.judge_limit]
        from robustify.runner.cache import default_cache_path

        cache_path = args.judge_cache or default_cache_path()
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        _report_judge(differing, scorers, args.judge, args.judge_mode, cache_path)


if __name__ == "__main__":
    main()
