"""``python -m robustify``: the command line.

Verbs: ``transforms`` (the catalogue), ``perturb`` (write a frozen variants file),
``run`` (the whole job), ``report`` (rebuild a report from a saved run).

Exit codes: 0 success, 1 a gate failed (drop above threshold, too many errors),
2 bad input or configuration (one line on stderr, no traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from perturbations import TASK_KINDS, all_transforms, parse_spec_list, perturb_items
from perturbations.errors import ConfigError, RobustifyError
from perturbations.spec import SEVERITY_PRESETS, parse_severity
from perturbations.version import __version__

from robustify.errors import AnalysisError

__all__ = ["main", "build_parser", "EXIT_OK", "EXIT_GATE", "EXIT_USAGE", "EXIT_ANALYSIS"]

EXIT_OK, EXIT_GATE, EXIT_USAGE, EXIT_ANALYSIS = 0, 1, 2, 3

log = logging.getLogger("robustify")


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2.

    Abbreviations are off: ``--api-key sk-...`` must not silently become
    ``--api-key-env sk-...`` (and then be echoed in an error).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        if message.startswith("unrecognized arguments:"):
            # list only the flags: a stray value may be a secret typed on the command line
            flags = [t for t in message.split(":", 1)[1].split() if t.startswith("-")]
            message = "unrecognized arguments: " + (" ".join(flags) or "(values without a flag)")
        raise ConfigError(f"{self.prog}: {message}")


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _int_at_least(minimum: int):
    """argparse type: a whole number >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


def _number(text: str) -> float:
    """argparse type: any number."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None


def _key_value(text: str) -> tuple[str, Any]:
    from robustify.pipeline.jobfile import check_param_name

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError("expected KEY=VALUE")
    try:
        check_param_name(key.strip())
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    try:
        value = json.loads(raw)  # numbers, booleans, lists
    except ValueError:
        value = raw
    return key.strip(), value


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="benchmark file, HF dataset folder, or 'sample' (built in; default)")
    p.add_argument("--format", help="format or preset (detected when omitted): "
                                    "jsonl json csv tsv parquet hf mmlu gsm8k boolq arc intent")
    p.add_argument("--map", help="field mapping, e.g. input=question,target=answer,meta.subject=topic")
    p.add_argument("--task", choices=TASK_KINDS, help="task kind for every row (inferred when omitted)")
    p.add_argument("--limit", type=_int_at_least(1), help="seeded sample of N items")


def _add_transform_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--transforms", type=_csv,
                   help="comma-separated specs, e.g. typos,slang@high,typos:kind=keyboard@0.3 "
                        "(default: typos,slang,truncation,ambiguity)")
    p.add_argument("--severity", type=_csv,
                   help="severities for specs without one: numbers in [0,1] or low,medium,high "
                        "(default: low,medium,high)")
    p.add_argument("--seed", type=int, help="seed for every variant (default 0)")
    p.add_argument("--replicates", type=_int_at_least(1),
                   help="independent variants per item and spec (default 1)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to generate the README's CLI section)."""
    parser = _Parser(prog="python -m robustify",
                     description="Stress-test language models on noisy, real-user versions of "
                                 "benchmark items.")
    parser.add_argument("--version", action="version", version=f"robustify {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)

    p = sub.add_parser("transforms", help="list every transform and profile")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table (README catalogue)")
    p.set_defaults(handler=_cmd_transforms)

    p = sub.add_parser("perturb", help="write a frozen variants file (no model calls)",
                       epilog="example: python -m robustify perturb --data sample "
                              "--transforms typos,slang --severity low,high --out variants.jsonl")
    _add_data_args(p)
    _add_transform_args(p)
    p.add_argument("--out", required=True, help="variants JSONL to write (atomically)")
    p.add_argument("--workers", type=_int_at_least(1), default=1,
                   help="processes to use (output is identical for any number)")
    p.set_defaults(handler=_cmd_perturb)

    p = sub.add_parser("run", help="perturb, query, score, analyse and report",
                       epilog="example: python -m robustify run --model local:smollm2 "
                              "--transforms typos,slang --limit 40 --fail-on-drop 10")
    p.add_argument("--config", help="job file (YAML); flags override it")
    _add_data_args(p)
    _add_transform_args(p)
    p.add_argument("--model", action="append",
                   help="model spec, repeatable: local:smollm2, local:/path.gguf, openai:NAME, "
                        "openai:NAME@http://host:port/v1, python:pkg.mod:func")
    p.add_argument("--api-key-env", help="variable holding the key for openai: models "
                                         "(default OPENAI_API_KEY)")
    p.add_argument("--max-tokens", type=_int_at_least(1), help="answer budget per call")
    p.add_argument("--temperature", type=_number, help="sampling temperature (default 0)")
    p.add_argument("--param", action="append", type=_key_value, metavar="KEY=VALUE",
                   help="generation parameter for every model, repeatable: top_p=0.9, "
                        "stop=..., or a backend-specific one such as repeat_penalty=1.0")
    p.add_argument("--out", help="run folder (default reports/<data>__<model>)")
    p.add_argument("--cache", help="response cache file, or 'off' (default ~/.cache/robustify/responses.sqlite)")
    p.add_argument("--concurrency", type=_int_at_least(1), help="parallel calls per model")
    p.add_argument("--max-calls", type=_int_at_least(0), help="make at most N model calls")
    p.add_argument("--templates", help="YAML/JSON file overriding the prompt templates")
    p.add_argument("--noise-floor", type=_int_at_least(0),
                   help="re-ask clean items K times to measure flips without noise")
    p.add_argument("--estimate", action="store_true",
                   help="print how many calls and tokens the job needs, then stop")
    p.add_argument("--fail-on-drop", type=_number, metavar="PP",
                   help="exit 1 when a drop's 95%% interval lies above PP percentage points")
    p.add_argument("--max-error-rate", type=_number, metavar="RATE",
                   help="exit 1 when more than RATE (0-1) of the calls failed")
    p.add_argument("--quiet", action="store_true",
                   help="no progress (bar, or a line every 30 s in a log), no summary table")
    p.set_defaults(handler=_cmd_run)

    from robustify.probes import compare
    from robustify.probes import leakage

    leakage.add_parser(sub)
    compare.add_parser(sub)

    p = sub.add_parser("report", help="rebuild a run's report from its saved results (no model calls)")
    p.add_argument("run_dir", help="a run folder written by 'run'")
    p.set_defaults(handler=_cmd_report)
    return parser


# ---------------------------------------------------------------- transforms

def _cmd_transforms(args: argparse.Namespace) -> int:
    rows = []
    for name, cls in all_transforms().items():
        options = ", ".join(
            f"{k}={'|'.join(o.choices) if o.choices else o.default}" for k, o in cls.OPTIONS.items()
            if k != "fields")
        parts = getattr(cls, "PARTS", ())
        if parts:  # profiles: show what they compose, with each part's severity factor
            options = " + ".join(f"{p.spec()} x{p.scale:g}" for p in parts)
        rows.append((name, cls.family, cls.label_policy, cls.summary(), cls.severity_doc(), options))
    if args.markdown:
        print("| transform | family | label | what it does | severity means | options |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            print("| " + " | ".join(f"`{r[0]}`" if i == 0 else str(c).replace("|", "\\|")
                                    for i, c in enumerate(r)) + " |")
        print()
        presets = ", ".join(f"{k}={v}" for k, v in SEVERITY_PRESETS.items())
        print(f"Severity presets: {presets}. Every transform also takes "
              f"`fields=input|context|choices` (default `input`).")
        return EXIT_OK
    width = max(len(r[0]) for r in rows)
    for name, family, policy, summary, severity, options in rows:
        print(f"{name:<{width}}  [{family}, {policy}]  {summary}")
        print(f"{'':<{width}}  severity: {severity}")
        if options:
            print(f"{'':<{width}}  options: {options}")
    return EXIT_OK


# ---------------------------------------------------------------- perturb

def _cmd_perturb(args: argparse.Namespace) -> int:
    from robustify.atomic import write_text_atomic
    from robustify.data import load_items

    specs = parse_spec_list(args.transforms or ["typos", "slang", "truncation", "ambiguity"])
    severities = args.severity or ["low", "medium", "high"]
    for s in severities:
        parse_severity(s, where="--severity")
    out = Path(args.out)
    if out.is_dir():
        raise ConfigError(f"{out}: is a directory; --out needs a file name")
    from robustify.pipeline.run import _check_writable

    _check_writable(out.parent if str(out.parent) else Path("."))
    items = load_items(args.data or "sample", format=args.format, mapping=args.map,
                       limit=args.limit, seed=args.seed or 0, task=args.task)
    variants = perturb_items(items, specs, severities=severities, seed=args.seed or 0,
                             replicates=args.replicates or 1, workers=args.workers)
    lines = [v.to_json() + "\n" for v in variants]
    write_text_atomic(out, "".join(lines))
    changed = sum('"changed": true' in line for line in lines)
    print(f"wrote {len(lines)} variants of {len(items)} items to {out} "
          f"({changed} changed, {len(lines) - changed} unchanged)", file=sys.stderr)
    return EXIT_OK


# ---------------------------------------------------------------- run

def _job_from_args(args: argparse.Namespace):
    from robustify.pipeline.jobfile import DataSource, Gates, JobConfig, ModelConfig, load_job

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
                        concurrency=m.concurrency, timeout=m.timeout)
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
    return job.override(seed=args.seed, replicates=args.replicates, limit=args.limit,
                        out=args.out, cache=args.cache, concurrency=args.concurrency,
                        max_calls=args.max_calls, templates=args.templates,
                        noise_floor=args.noise_floor, gates=gates, **changes).validate()


def _print_summary(result, out=sys.stdout) -> None:
    summary = result.summary()
    overview = result.overview()
    for row in overview.itertuples(index=False):
        print(f"\n{row.model}: clean {row.clean_score * 100:.1f}%  mean under noise "
              f"{row.perturbed_score * 100:.1f}%  worst case {row.worst_case_score * 100:.1f}%",
              file=out)
    header = f"  {'transform':<28} {'n':>4} {'clean':>7} {'noisy':>7} {'drop (95% CI), pp':>24}"
    current = None
    for row in summary.itertuples(index=False):
        if row.model != current:
            current = row.model
            print(f"\n{current}\n{header}", file=out)
        ci = f"{row.drop * 100:+.1f} ({row.ci_low * 100:+.1f} to {row.ci_high * 100:+.1f})"
        flag = "  *may break*" if row.label_policy == "may_break" else ""
        print(f"  {row.spec:<28} {row.n_items:>4} {row.clean_score * 100:>6.1f}% "
              f"{row.perturbed_score * 100:>6.1f}% {ci:>24}{flag}", file=out)


def _cmd_run(args: argparse.Namespace) -> int:
    from robustify.pipeline.run import prepare_job, run_job

    job = _job_from_args(args)
    progress = not args.quiet  # a bar on a terminal, plain lines in a log
    prepared = prepare_job(job)
    if args.estimate:
        from robustify.prompts import build_messages
        from robustify.runner.execute import estimate_calls

        cache = None
        if prepared.cache_path is not None and prepared.cache_path.exists():
            from robustify.runner.cache import ResponseCache

            cache = ResponseCache(prepared.cache_path)
        est = estimate_calls(list(prepared.variants()), prepared.backends, build_messages, cache)
        for key, value in est.items():
            print(f"{key}: {value}")
        return EXIT_OK
    result = run_job(job, progress=progress, prepared=prepared)
    if not args.quiet:
        _print_summary(result)
    counts = result.manifest.get("counts", {})
    if counts.get("failed"):
        print(f"{counts['failed']} of {counts['rows']} rows failed (their model call gave up); "
              f"see {result.out_dir / 'results.csv'} (column 'error')", file=sys.stderr)
    print(f"report: {result.out_dir / 'report.html'}")
    failures = result.check_gates(job.gates)
    for message in failures:
        print(f"gate failed: {message}", file=sys.stderr)
    return EXIT_GATE if failures else EXIT_OK


# ---------------------------------------------------------------- report

def _cmd_report(args: argparse.Namespace) -> int:
    from robustify.pipeline.run import RunResult

    run_dir = Path(args.run_dir)
    if not (run_dir / "results.jsonl").is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no results.jsonl)")
    result = RunResult.load(run_dir)
    files = result.write_report(run_dir)
    print(f"report: {files['html']}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                            format="%(levelname)s %(name)s: %(message)s")
        if not getattr(args, "handler", None):
            parser.print_help()
            return EXIT_USAGE
        return int(args.handler(args))
    except AnalysisError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ANALYSIS
    except RobustifyError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: answers received so far are in the response cache; run the same "
              "command again to resume", file=sys.stderr)
        return 130


def _one_line(exc: BaseException) -> str:
    from robustify.models.base import one_line

    return one_line(exc, limit=4000)  # also masks anything shaped like an API key


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
