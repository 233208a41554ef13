"""Call economy and the cache, on the default job.

The default job is the built-in ``sample`` benchmark x typos, slang, truncation,
ambiguity x low/medium/high, seed 0 (``robustify.pipeline.jobfile.JobConfig()``).

1. **Call economy.** ``estimate_calls`` counts, without any model, the rows, the
   distinct prompts and the calls a fresh run makes (unchanged variants reuse their
   clean answer; identical prompts are sent once). A real run against the loopback
   server (separate process, latency ``L``) then confirms calls = distinct prompts by
   counting what the server received.
2. **Cache.** The same run again, with the same cache file: it must make 0 calls (the
   server's counter does not move) and take under 10% of the first run's wall time.

Run: ``python -m benchmarks.cache_and_calls [--quick]``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

from benchmarks.common import FakeServerProcess, Figure, check, load_average, section_main, timed

__all__ = ["measure", "main"]

LATENCY = 0.25
CONCURRENCY = 64


def measure(quick: bool = False) -> tuple[dict[str, Any], list[Figure]]:
    """Estimate, run, re-run; return raw numbers and figures."""
    from robustify.pipeline import prepare_job
    from robustify.runner.cache import ResponseCache
    from robustify.pipeline.jobfile import JobConfig
    from robustify.models import parse_model_spec
    from robustify.prompts import build_messages
    from robustify.runner.execute import estimate_calls, run_queries
    from robustify.scoring import score_answer

    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as tmp:
        job = JobConfig(out=str(Path(tmp) / "report"), cache="off")
        prepared = prepare_job(job, preflight=False)
        variants = list(prepared.variants())
        estimate = estimate_calls(variants, prepared.backends, build_messages)
        rows = estimate["rows"]
        unique = estimate["unique_prompts"]
        unchanged = sum(1 for v in variants if not v.changed and not v.is_clean)
        raw: dict[str, Any] = {"job": "sample x typos, slang, truncation, ambiguity x "
                                      "low/medium/high, seed 0",
                               "items": len(prepared.items), "rows": rows,
                               "unique_prompts": unique, "calls_estimated": estimate["calls"],
                               "unchanged_variants": unchanged,
                               "duplicates": estimate["duplicates"]}
        saving = 1 - estimate["calls"] / rows
        figures.append(Figure(
            "calls", "default job: calls / rows (estimate)", estimate["calls"] / rows, "",
            note=f"{rows} rows ({len(prepared.items)} items x 13), {unique} distinct prompts, "
                 f"{estimate['calls']} calls: {saving:.0%} fewer calls than rows "
                 f"({unchanged} unchanged variants reuse their clean answer)", extra=raw))

        with FakeServerProcess(LATENCY) as server:
            backend = parse_model_spec(f"openai:fake@{server.base_url}",
                                       concurrency=CONCURRENCY)
            cache_path = Path(tmp) / "responses.sqlite"

            def run() -> Any:
                with ResponseCache(cache_path) as cache:
                    return run_queries(variants, [backend], build_messages=build_messages,
                                       score=score_answer, cache=cache, progress=False)

            before = server.stats()["completions"]
            first_s, _, first = timed(run)
            middle = server.stats()["completions"]
            second_s, _, second = timed(run)
            after = server.stats()["completions"]
        first_calls = first.attrs["run_stats"][backend.label]["calls"]
        second_calls = second.attrs["run_stats"][backend.label]["calls"]
        served_first, served_second = middle - before, after - middle
        same = first["response"].tolist() == second["response"].tolist()
        raw.update({"first_run_s": first_s, "rerun_s": second_s, "server_calls_first": served_first,
                    "server_calls_rerun": served_second, "runner_calls_first": first_calls,
                    "runner_calls_rerun": second_calls, "rerun_same_answers": same,
                    "load": load_average()[0]})
        figures.append(Figure(
            "calls", "real run: server calls - distinct prompts", served_first - unique, "",
            "== 0", check(served_first - unique, "== 0"),
            f"fake server (L={LATENCY}s, C={CONCURRENCY}) received {served_first} requests for "
            f"{rows} rows; runner counted {first_calls}"))
        figures.append(Figure(
            "cache", "re-run of a finished job: model calls", served_second, "", "== 0",
            check(served_second, "== 0"), f"runner counted {second_calls}; identical answers: "
                                          f"{same}"))
        ratio = second_s / first_s
        figures.append(Figure(
            "cache", "re-run wall time / first run", ratio, "", "< 0.1", check(ratio, "< 0.1"),
            f"first {first_s:.2f}s, re-run {second_s:.3f}s ({rows} rows from the cache)", raw))
    return raw, figures


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``--quick`` (same work: the default job is small)."""
    section_main(__doc__, measure, argv)


if __name__ == "__main__":
    main()
