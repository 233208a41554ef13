"""The judge pass: grade a results frame's answers with a judge model, through the runner.

After the answers are in (their scores NaN, waiting), every answered row becomes one
judge prompt (:mod:`robustify.scoring.judge`: the rubric of the row's reference, the
question, the reference, the answer) and the prompts go through :func:`run_queries`
like any other: deduplicated, looked up in the response cache (keyed by the judge's
identity and the judge prompt, so a rerun makes no judge call), sent with the judge's
own concurrency and retries, failures recorded per row. The verdict becomes the row's
score (1.0 / 0.0); an unparseable verdict or a failed judge call leaves it NaN and is
counted apart. The verdict, the judge's reply (cut to 200 characters) and any judge
error go into the row's ``score_detail``.

Rows not sent to the judge: failed answers (no text); rows without a reference (an
empty target: nothing to judge against); in a consistency run (``reference ==
"clean_answer"``), an answer identical to the clean answer (``SAME`` without a call).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import TYPE_CHECKING, Any, Mapping

from perturbations import Item, Variant

from robustify.models.base import FatalModelError
from robustify.records import GenerationParams, Score
from robustify.scoring.judge import (RUBRICS, JudgeConfig, judge_messages,
                                     parse_verdict, rubric_facts, rubric_for)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["build_judge", "judge_results", "judge_summary", "REPLY_CHARS"]

REPLY_CHARS = 200
"""The judge's reply is kept in ``score_detail`` up to this many characters."""


def build_judge(config: JudgeConfig) -> Any:
    """The judge backend: temperature 0, the judge's answer budget, concurrency and retries.

    Built (keys, files, spec checked) without any call. In ``loglik`` mode it is wrapped
    so that it rates the two verdict words instead of writing.

    Raises:
        ConfigError: bad model spec or option, missing key, a loglik judge whose backend
            gives no log-probabilities.
    """
    from robustify.models import parse_model_spec
    from robustify.models.requests import RequestBackend
    from robustify.models.retry import RetryPolicy

    options: dict[str, Any] = {}
    if config.retries is not None:
        options["retry"] = RetryPolicy(max_attempts=config.retries)
    params = GenerationParams(temperature=0.0, seed=0, max_tokens=config.max_tokens)
    backend = parse_model_spec(config.spec, params=params, api_key_env=config.api_key_env,
                               concurrency=config.concurrency, timeout=config.timeout,
                               **options)
    if config.mode == "loglik":
        backend = RequestBackend(backend, scoring="loglik")
    return backend


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _messages_for(mode: str):
    from robustify.models.requests import add_request

    def build(item: Item) -> list[dict[str, str]]:
        rubric = RUBRICS[item.metadata["form"]]
        messages = [{"role": "system", "content": rubric.system},
                    {"role": "user", "content": item.input}]
        if mode == "loglik":
            messages = add_request(messages, options=[rubric.right, rubric.wrong])
        return messages

    return build


def _grade(item: Item, text: str) -> Score:
    rubric = RUBRICS[item.metadata["form"]]
    verdict = parse_verdict(text, rubric)
    if verdict is None:
        return Score(math.nan, unparseable=True)
    return Score(1.0 if verdict == rubric.right else 0.0, parsed=verdict)


def _detail(verdict: str, form: str, **extra: Any) -> str:
    detail = {"judge": verdict, "rubric": form}
    detail.update({k: v for k, v in extra.items() if v is not None})
    return json.dumps(detail, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def judge_results(frame: pd.DataFrame, backend: Any, config: JudgeConfig, *, cache: Any,
                  progress: bool | str = False) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Grade every answered row of ``frame`` with the judge ``backend``.

    Returns:
        A copy of the frame with ``score`` and ``score_detail`` set by the judge, and the
        judge facts for the manifest: spec, options, identity, rubrics (text and hash),
        rows judged, calls and cache hits, verdict counts, unparseable, failed.
    """
    import pandas as pd

    from robustify.runner.execute import run_queries

    frame = frame.copy()
    scores = frame["score"].astype(float).to_numpy(copy=True)
    details = frame["score_detail"].astype(object).to_numpy(copy=True)
    references = (frame["meta.reference"] if "meta.reference" in frame
                  else pd.Series([None] * len(frame), index=frame.index))
    counts: Counter[str] = Counter()
    asked: list[int] = []
    forms: list[str] = []
    variants: list[Variant] = []
    for pos, (response, error, target, question, reference) in enumerate(zip(
            frame["response"], frame["error"], frame["target"], frame["input"], references)):
        answer, gold = _text(response), _text(target)
        if answer is None or _text(error) is not None:
            continue  # a failed answer: nothing to judge
        rubric = rubric_for({"reference": _text(reference) or "gold"})
        if gold is None or not gold.strip():
            counts["no_reference"] += 1
            scores[pos] = math.nan
            details[pos] = _detail("no reference", rubric.form)
            continue
        if rubric.form == "clean_answer" and answer.strip() == gold.strip():
            counts["identical"] += 1
            counts[rubric.right] += 1
            scores[pos] = 1.0
            details[pos] = _detail(rubric.right, rubric.form, source="identical")
            continue
        user = judge_messages(rubric, _text(question) or "", gold, answer)[1]["content"]
        item = Item(id=f"judge-{len(asked)}", input=user, target=rubric.right,
                    metadata={"form": rubric.form})
        asked.append(pos)
        forms.append(rubric.form)
        variants.append(Variant.clean(item))
    stats: dict[str, Any] = {"calls": 0, "cache_hits": 0, "unique_prompts": 0}
    fatal = None
    if variants:
        try:
            judged = run_queries(variants, [backend], build_messages=_messages_for(config.mode),
                                 score=_grade, cache=cache, progress=progress)
        except FatalModelError as exc:  # the judge failed for good: keep what it said
            if getattr(exc, "results", None) is None:
                raise
            fatal, judged = str(exc), exc.results
        stats = judged.attrs.get("run_stats", {}).get(backend.label, stats)
        for pos, form, row in zip(asked, forms, judged.itertuples(index=False)):
            reply = _text(row.response)
            error = _text(row.error)
            if error is not None:
                verdict = "failed"
            elif row.unparseable:
                verdict = "unparseable"
            else:
                verdict = str(row.parsed)
            counts[verdict] += 1
            scores[pos] = float(row.score) if verdict not in ("failed", "unparseable") \
                else math.nan
            details[pos] = _detail(verdict, form,
                                   reply=reply[:REPLY_CHARS] if reply is not None else None,
                                   judge_error=error, judge_cached=bool(row.cached) or None)
    frame["score"] = scores
    frame["score_detail"] = details
    facts = {
        "spec": config.spec,
        "scorer": config.scorer,
        "mode": config.mode,
        "options": config.options(),
        "label": backend.label,
        "identity": dict(backend.identity()),
        "temperature": 0.0,
        "max_tokens": config.max_tokens,
        "concurrency": getattr(backend, "max_concurrency", None),
        "rubrics": rubric_facts(),
        "rows_judged": len(asked),
        "calls": int(stats.get("calls", 0)),
        "cache_hits": int(stats.get("cache_hits", 0)),
        "unique_prompts": int(stats.get("unique_prompts", 0)),
        "verdicts": {k: counts[k] for k in _verdict_names() if counts[k]},
        "identical": counts["identical"],
        "no_reference": counts["no_reference"],
        "unparseable": counts["unparseable"],
        "failed": counts["failed"],
        **({"fatal": fatal} if fatal else {}),
    }
    return frame, facts


def _verdict_names() -> list[str]:
    names: list[str] = []
    for rubric in RUBRICS.values():
        names += [rubric.right, rubric.wrong]
    return names


def judge_summary(facts: Mapping[str, Any]) -> str:
    """One line on what the judge said: verdicts, unparseable and failed apart."""
    verdicts = ", ".join(f"{n} {name}" for name, n in (facts.get("verdicts") or {}).items())
    if facts.get("identical"):
        verdicts += (f" ({facts['identical']} of them identical to the reference, decided "
                     f"without a call)")
    return (f"judge {facts.get('spec')} ({facts.get('mode', 'generate')}): "
            f"{facts.get('rows_judged', 0)} answers judged, {facts.get('calls', 0)} calls, "
            f"{facts.get('cache_hits', 0)} cache hits; {verdicts or 'no verdict'}; "
            f"{facts.get('unparseable', 0)} unparseable and {facts.get('failed', 0)} failed "
            f"(not scored)")

