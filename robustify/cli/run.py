"""``run``: the whole job (perturb, query, score, analyse, report), with gates and estimates."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from robustify.cli.common import (EXIT_GATE, EXIT_OK, add_data_args, add_transform_args,
                                  int_at_least, key_value, number)

__all__ = ["add_parser", "handle", "job_from_args", "print_summary", "variant_notes",
           "rewrite_notes"]


def add_parser(subparsers: Any) -> None:
    """Add this verb to the CLI's subparsers."""
    p = subparsers.add_parser("run", help="perturb, query, score, analyse and report",
                       epilog="example: python -m robustify run --model local:smollm2 "
                              "--transforms typos,slang --limit 40 --fail-on-drop 10")
    p.add_argument("--config", help="job file (YAML); flags override it")
    add_data_args(p)
    add_transform_args(p)
    p.add_argument("--variants", metavar="FILE",
                   help="ask a frozen variants file (from 'perturb' or a run's "
                        "variants.jsonl) instead of drawing new variants; clean items come "
                        "from the file's clean rows or from --data")
    p.add_argument("--model", action="append",
                   help="model spec, repeatable: local:smollm2, local:/path.gguf, openai:NAME, "
                        "openai:NAME@http://host:port/v1, openai:NAME@URL1,URL2 (several "
                        "endpoints), python:pkg.mod:func")
    p.add_argument("--api-key-env", help="variable holding the key for openai: models "
                                         "(default OPENAI_API_KEY)")
    p.add_argument("--max-tokens", type=int_at_least(1), help="answer budget per call")
    p.add_argument("--temperature", type=number, help="sampling temperature (default 0)")
    p.add_argument("--param", action="append", type=key_value, metavar="KEY=VALUE",
                   help="generation parameter for every model, repeatable: top_p=0.9, "
                        "stop=..., or a backend-specific one such as repeat_penalty=1.0")
    p.add_argument("--out", help="run folder (default reports/<data>__<model>)")
    p.add_argument("--force", action="store_true",
                   help="write into an existing --out folder that is not a robustify run")
    p.add_argument("--cache", help="response cache file, or 'off' (default ~/.cache/robustify/responses.sqlite)")
    p.add_argument("--concurrency", type=int_at_least(1), help="parallel calls per model")
    p.add_argument("--max-calls", type=int_at_least(0),
                   help="make at most N model calls (needed to confirm a job that plans "
                        "more than 100,000)")
    p.add_argument("--batch", action="store_true",
                   help="answer openai: models through the OpenAI Batch API: about half the "
                        "price, answers within 24 h; a stopped run resumes its batches")
    p.add_argument("--templates", help="YAML/JSON file overriding the prompt templates")
    p.add_argument("--realism-ref", metavar="FILE",
                   help="real user messages (one per line, or a column named with the "
                        "usual names): the report measures each setting against them")
    p.add_argument("--scorer", help="grade every item with this registered scorer (exact, "
                                    "normalized, contains, token_f1, numeric, ...; default: "
                                    "by each item's task kind), or judge:MODEL_SPEC to have "
                                    "a model grade the answers")
    p.add_argument("--judge-concurrency", type=int_at_least(1), metavar="N",
                   help="with --scorer judge:MODEL_SPEC: judge calls in flight")
    p.add_argument("--judge-mode", choices=("generate", "loglik"),
                   help="with --scorer judge:MODEL_SPEC: generate (the judge writes its "
                        "verdict, default) or loglik (the likelier verdict word)")
    p.add_argument("--scoring-mode", choices=("generate", "loglik", "loglik_norm"),
                   help="generate: the model writes its answer (default); loglik: multiple "
                        "choice, classification and yes/no items take the option with the "
                        "highest log-likelihood; loglik_norm: per character")
    p.add_argument("--fewshot", type=int_at_least(0), metavar="K",
                   help="show K of your own rows per task kind as examples (never evaluated) "
                        "instead of the built-in ones")
    p.add_argument("--stratify", metavar="FIELD",
                   help="--limit keeps the proportions of FIELD (target, task or a metadata "
                        "key)")
    p.add_argument("--noise-floor", type=int_at_least(0),
                   help="re-ask clean items K times to measure flips without noise")
    p.add_argument("--estimate", action="store_true",
                   help="print how many calls and tokens the job needs and, from a few "
                        "timed calls per model (answers cached), how long it takes; then stop")
    p.add_argument("--fail-on-drop", type=number, metavar="PP",
                   help="exit 1 when a drop's 95%% interval lies above PP percentage points")
    p.add_argument("--max-error-rate", type=number, metavar="RATE",
                   help="exit 1 when more than RATE (0-1) of the calls failed")
    p.add_argument("--quiet", action="store_true",
                   help="no progress (bar, or a line every 30 s in a log), no summary table")
    p.set_defaults(handler=handle)


def job_from_args(args: argparse.Namespace):
    from perturbations.errors import ConfigError

    from robustify.pipeline.jobfile import DataSource, Gates, JobConfig, ModelConfig, load_job

    if args.variants and (args.transforms or args.severity or args.replicates):
        raise ConfigError("--variants asks the variants of a frozen file: --transforms, "
                          "--severity and --replicates do not apply")

    job = load_job(args.config) if args.config else JobConfig()
    changes: dict[str, Any] = {}
    if args.data or args.format or args.map or args.task:
        if args.data is None and args.config:
            sources = tuple(DataSource(d.path, args.format or d.format, args.map or d.map, d.name,
                                       args.task or d.task) for d in job.data)
        else:
            sources = (DataSource(path=args.data or "sample", format=args.format, map=args.map,
                                  task=args.task),)
        changes["data"] = sources
    if args.model:
        changes["models"] = tuple(ModelConfig(spec=m) for m in args.model)
    models = changes.get("models", job.models)
    params: dict[str, Any] = {}
    if args.max_tokens is not None:
        params["max_tokens"] = args.max_tokens
    if args.temperature is not None:
        params["temperature"] = args.temperature
    known = {"temperature", "seed", "max_tokens", "stop", "top_p"}
    for key, value in args.param or ():
        if key in known:
            params[key] = value
        else:
            params.setdefault("extra", {})[key] = value
    if params or args.api_key_env:
        models = tuple(
            ModelConfig(spec=m.spec, api_key_env=args.api_key_env or m.api_key_env,
                        params={**m.params, **params,
                                "extra": {**m.params.get("extra", {}), **params.get("extra", {})}},
                        concurrency=m.concurrency, timeout=m.timeout, options=m.options)
            for m in models)
        changes["models"] = models
    if args.transforms:
        changes["transforms"] = tuple(args.transforms)
    if args.severity:
        changes["severity"] = tuple(args.severity)
    gates = job.gates
    if args.fail_on_drop is not None or args.max_error_rate is not None:
        gates = Gates(fail_on_drop=args.fail_on_drop if args.fail_on_drop is not None
                      else gates.fail_on_drop,
                      per_transform=gates.per_transform,
                      max_error_rate=args.max_error_rate if args.max_error_rate is not None
                      else gates.max_error_rate)
    if args.judge_concurrency is not None or args.judge_mode is not None:
        changes["judge_options"] = {**job.judge_options, **{
            k: v for k, v in (("concurrency", args.judge_concurrency),
                              ("mode", args.judge_mode)) if v is not None}}
    return job.override(seed=args.seed, replicates=args.replicates, limit=args.limit,
                        out=args.out, cache=args.cache, concurrency=args.concurrency,
                        max_calls=args.max_calls, templates=args.templates,
                        noise_floor=args.noise_floor, gates=gates, scorer=args.scorer,
                        realism_ref=args.realism_ref, variants=args.variants,
                        force=args.force or None,
                        scoring_mode=args.scoring_mode, fewshot=args.fewshot,
                        stratify=args.stratify, batch=(job.batch or True) if args.batch else None,
                        **changes).validate()


def print_summary(result, out=None) -> None:
    """The terminal summary: per model its warnings first, then the headline, per spec the
    drop, then the variants and the rewrites the checks rejected.

    The numbers are those of the report ``result`` wrote last (``result.reported``, as
    long as ``result.results`` is the frame it was written from), else computed now."""
    out = out if out is not None else sys.stdout  # looked up now: tests and notebooks swap it
    from robustify.analysis import REALISTIC_LABELS
    from robustify.reporting.format import pct, pp
    from robustify.reporting.headline import ReportNumbers

    numbers = result.reported
    if numbers is None or numbers.source is not result.results:
        numbers = ReportNumbers(result.results, result.manifest, seed=result.seed)
    summary, overview, warned = numbers.summary, numbers.overview, numbers.warnings
    realistic, stress = numbers.levels
    from robustify.reporting.headline import consistency_note, consistency_of

    consistency = consistency_of(result.manifest)
    if consistency is not None:
        print("\n" + consistency_note(consistency), file=out)
    for row in overview.itertuples(index=False):
        print("", file=out)
        for message in warned.get(str(row.model), ()):
            print(f"{row.model}: WARNING: {message}", file=out)
        parts = [("consistency: " if consistency is not None else "")
                 + f"clean {pct(row.clean_score)}"]
        for name, table in (("realistic", realistic), ("stress", stress)):
            if table is not None and row.model in table.index and \
                    table.loc[row.model, "n_variants"]:
                parts.append(f"{name} {pct(table.loc[row.model, 'perturbed_score'])}")
        parts.append(f"worst case {pct(row.worst_case_score)}")
        low, high = row.overestimation_ci_low_pp, row.overestimation_ci_high_pp
        if low == low and high == high and low <= 0.0 <= high:  # NaN-safe
            parts.append("no detectable change")
        print(f"{row.model}: " + "  ".join(parts), file=out)
    header = (f"  {'transform':<28} {'n':>4} {'changed':>8} {'clean':>7} {'noisy':>7} "
              f"{'drop (95% CI), pp':>24}")
    current = None
    for row in summary.itertuples(index=False):
        if row.model != current:
            current = row.model
            print(f"\n{current}\n{header}", file=out)
        ci = f"{pp(row.drop * 100)} ({pp(row.ci_low * 100)} to {pp(row.ci_high * 100)})"
        flag = ("  *may break*" if row.label_policy == "may_break" else
                "  realistic" if row.severity_label in REALISTIC_LABELS else "")
        changed = row.n_changed / row.n_rows if row.n_rows else 0.0
        print(f"  {row.spec:<28} {row.n_items:>4} {changed * 100:>7.0f}% "
              f"{pct(row.clean_score):>7} {pct(row.perturbed_score):>7} "
              f"{ci:>24}{flag}", file=out)
    for line in variant_notes(result.manifest.get("variants") or []):
        print(line, file=out)
    from robustify.runner.adaptive import describe_level

    for label, level in (result.manifest.get("concurrency") or {}).items():
        line = describe_level(level)
        if line:
            print(f"{label}: {line}", file=out)
    for line in rewrite_notes(result.manifest.get("rewrites") or []):
        print(line, file=out)
    if result.manifest.get("judge"):  # unparseable and failed verdicts counted apart
        from robustify.runner.judge import judge_summary

        print(judge_summary(result.manifest["judge"]), file=out)


def rewrite_notes(entries: list[dict[str, Any]]) -> list[str]:
    """One line per model-written rewrite spec: kept, rejected and why (the manifest's
    ``rewrites``; every rejection is in rewrite_rejections.csv)."""
    lines = []
    for e in entries:
        rejected = int(e.get("n_rejected") or 0)
        reasons = ", ".join(f"{reason} {n}" for reason, n in
                            sorted((e.get("rejected_by_reason") or {}).items(),
                                   key=lambda kv: (-kv[1], kv[0])))
        line = (f"{e.get('spec')}: {e.get('n_accepted', 0)} of {e.get('n_items', 0)} rewrites "
                f"kept, {rejected} rejected")
        lines.append(line + (f" ({reasons}); see rewrite_rejections.csv" if rejected else ""))
    return lines


def variant_notes(rows: list[dict[str, Any]]) -> list[str]:
    """What the gold guard did and which transforms could not apply, once per transform.

    Args:
        rows: The manifest's ``variants`` (:meth:`perturbations.VariantTally.rows`).
    """
    lines = []
    redrawn = sum(r.get("redrawn", 0) for r in rows)
    dropped = sum(r.get("dropped", 0) for r in rows)
    drawn = sum(r.get("drawn", 0) for r in rows)
    if drawn:
        kinds: dict[str, int] = {}
        for r in rows:
            for kind, n in (r.get("violations") or {}).items():
                kinds[kind] = kinds.get(kind, 0) + n
        what = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "none"
        lines.append(f"\ngold guard: {drawn} variants drawn, {redrawn} redrawn, {dropped} dropped "
                     f"(violations: {what})")
    said: set[str] = set()
    for r in rows:
        if r.get("cannot_apply") and r["transform"] not in said:
            said.add(r["transform"])
            reasons = "; ".join(sorted(r.get("skip_reasons") or {}))
            lines.append(f"{r['transform']}: cannot apply to {r['cannot_apply']} of "
                         f"{r['drawn']} items ({reasons}); those variants are unchanged")
    return lines


def handle(args: argparse.Namespace) -> int:
    from robustify.pipeline import prepare_job, run_job

    job = job_from_args(args)
    progress = not args.quiet  # a bar on a terminal, plain lines in a log
    prepared = prepare_job(job)
    if args.estimate:
        from robustify.cli.estimate import print_estimate

        print_estimate(prepared)
        return EXIT_OK
    from robustify.cli.estimate import warn_large_run

    prepared.check_planned_calls()  # refused before any warning or call
    warn_large_run(prepared)
    result = run_job(job, progress=progress, prepared=prepared)
    if not args.quiet:
        print_summary(result)
    counts = result.manifest.get("counts", {})
    if counts.get("failed"):
        print(f"{counts['failed']} of {counts['rows']} rows failed (their model call gave up); "
              f"see {result.out_dir / 'results.csv'} (column 'error')", file=sys.stderr)
    print(f"report: {result.out_dir / 'report.html'}")
    failures = result.check_gates(job.gates)
    for message in failures:
        print(f"gate failed: {message}", file=sys.stderr)
    return EXIT_GATE if failures else EXIT_OK
