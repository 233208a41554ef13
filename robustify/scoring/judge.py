"""The judge scorer's text side: its spec, its rubric prompts and how a verdict is read.

``--scorer judge:MODEL_SPEC`` grades every answer by asking another model (any backend:
``judge:local:smollm2``, ``judge:openai:gpt-4o-mini``, ``judge:openai:NAME@URL``). It is
not a plain ``(item, text) -> Score`` scorer, since it needs model calls: the answers are
scored ``NaN`` while they arrive and a judge pass (:mod:`robustify.runner.judge`) grades
them afterwards through the runner (cached, concurrent, retried, temperature 0).

The rubric has two forms, picked per row by ``item.metadata.get("reference", "gold")``:

``gold``
    Is the answer correct, judged against the gold answer? Verdict ``CORRECT`` (1.0) or
    ``INCORRECT`` (0.0).
``clean_answer``
    (consistency runs, no gold) Does the answer say the same thing as the model's answer
    to the clean question? Verdict ``SAME`` (1.0) or ``DIFFERENT`` (0.0).

The judge must answer with one of the two words. :func:`parse_verdict` reads it
robustly (case, punctuation, markdown, a ``Verdict:`` label, ``NOT CORRECT``, a
sentence that contains exactly one verdict); anything else is ``unparseable``: scored
NaN and counted apart, never as wrong. In ``mode: loglik`` the judge does not write:
the two verdict words are rated by log-likelihood and the likelier one is the verdict,
so every verdict parses (local and OpenAI-compatible backends with logprobs).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Mapping

from perturbations.errors import ConfigError

__all__ = ["JUDGE_PREFIX", "JUDGE_MODES", "RUBRICS", "Rubric", "JudgeConfig", "is_judge",
           "parse_judge_scorer", "rubric_for", "judge_messages", "parse_verdict",
           "rubric_facts"]

JUDGE_PREFIX = "judge:"
"""A scorer string starting with this names a judge model: ``judge:MODEL_SPEC``."""

JUDGE_MODES = ("generate", "loglik")
"""``generate``: the judge writes its verdict (parsed); ``loglik``: the likelier of the two
verdict words is the verdict (always parseable)."""


@dataclass(frozen=True)
class Rubric:
    """One form of the judge prompt and its two verdict words (right first)."""

    form: str
    system: str
    user: str
    """Template with ``{question}``, ``{reference}`` and ``{answer}``."""
    right: str
    wrong: str

    @property
    def sha256(self) -> str:
        """Hash of the prompt text (system, user template, verdict words)."""
        text = "\n\x00\n".join((self.system, self.user, self.right, self.wrong))
        return hashlib.sha256(text.encode()).hexdigest()


RUBRICS: dict[str, Rubric] = {
    "gold": Rubric(
        form="gold",
        system=("You grade answers to questions. Compare the answer to grade with the "
                "reference answer. Ignore wording, case, punctuation and extra explanation; "
                "judge only whether the answer gives the same final answer as the reference. "
                "Reply with exactly one word: CORRECT or INCORRECT."),
        user=("Question:\n{question}\n\nReference answer:\n{reference}\n\n"
              "Answer to grade:\n{answer}\n\n"
              "Is the answer to grade correct? Reply with one word: CORRECT or INCORRECT."),
        right="CORRECT", wrong="INCORRECT"),
    "clean_answer": Rubric(
        form="clean_answer",
        system=("You compare two answers to the same question. Ignore wording, case, "
                "punctuation and length; judge only whether they mean the same thing "
                "(the same final answer or the same claim). "
                "Reply with exactly one word: SAME or DIFFERENT."),
        user=("Question:\n{question}\n\nFirst answer:\n{reference}\n\n"
              "Second answer:\n{answer}\n\n"
              "Do the two answers mean the same thing? Reply with one word: SAME or DIFFERENT."),
        right="SAME", wrong="DIFFERENT"),
}
"""The rubric prompt per form (``item.metadata["reference"]``: ``gold`` or ``clean_answer``)."""


@dataclass(frozen=True)
class JudgeConfig:
    """A judge scorer: the judge's model spec and its own call options."""

    spec: str
    """The judge's model spec (``local:smollm2``, ``openai:NAME@URL`` ...)."""
    concurrency: int | None = None
    """Judge calls in flight (default: the backend's own)."""
    retries: int | None = None
    """Attempts per judge call, the first included (default: the backend's policy)."""
    timeout: float | None = None
    """Seconds per judge call."""
    max_tokens: int = 8
    """Answer budget of a written verdict."""
    mode: str = "generate"
    """One of :data:`JUDGE_MODES`."""
    api_key_env: str | None = None
    """Variable holding the judge's key (remote judges)."""

    @property
    def scorer(self) -> str:
        """The scorer string, ``judge:SPEC``."""
        return JUDGE_PREFIX + self.spec

    def options(self) -> dict[str, Any]:
        """The options that differ from the defaults (a job file's mapping form)."""
        out: dict[str, Any] = {}
        for name, default in (("concurrency", None), ("retries", None), ("timeout", None),
                              ("max_tokens", 8), ("mode", "generate"), ("api_key_env", None)):
            value = getattr(self, name)
            if value != default:
                out[name] = value
        return out


_OPTION_NAMES = ("concurrency", "retries", "timeout", "max_tokens", "mode", "api_key_env")


def is_judge(scorer: Any) -> bool:
    """Whether ``scorer`` names a judge (``judge:SPEC`` or a mapping with ``judge``)."""
    if isinstance(scorer, str):
        return scorer.strip().lower().startswith(JUDGE_PREFIX)
    return isinstance(scorer, Mapping) and "judge" in scorer


def _positive(value: Any, name: str, where: str, *, whole: bool) -> Any:
    ok = (not isinstance(value, bool) and isinstance(value, int if whole else (int, float))
          and value > 0)
    if not ok:
        kind = "a positive whole number" if whole else "a positive number"
        raise ConfigError(f"{where}judge option {name!r} must be {kind}, got {value!r}")
    return value


def parse_judge_scorer(scorer: Any, options: Mapping[str, Any] | None = None, *,
                       where: str = "") -> JudgeConfig:
    """Read a judge scorer: ``"judge:SPEC"`` or ``{"judge": SPEC, option: value ...}``.

    Only the syntax is checked here (the model spec is checked when the judge backend is
    built, before any call). ``options`` adds options to a string form (CLI flags).

    Raises:
        ConfigError: one line (prefixed with ``where``) naming the bad part.
    """
    if isinstance(scorer, Mapping):
        raw = dict(scorer)
        spec = raw.pop("judge", None)
        unknown = sorted(set(raw) - set(_OPTION_NAMES))
        if unknown:
            raise ConfigError(f"{where}unknown judge option(s) {', '.join(map(repr, unknown))}"
                              f"; known: judge, {', '.join(_OPTION_NAMES)}")
        if not isinstance(spec, str):
            raise ConfigError(f"{where}'judge' must be a model spec such as local:smollm2, "
                              f"got {spec!r}")
    elif isinstance(scorer, str) and is_judge(scorer):
        spec = scorer.strip()[len(JUDGE_PREFIX):]
        raw = {}
    else:
        raise ConfigError(f"{where}not a judge scorer: {scorer!r} (expected judge:MODEL_SPEC)")
    raw.update({k: v for k, v in (options or {}).items() if v is not None})
    spec = spec.strip()
    if not spec or ":" not in spec:
        raise ConfigError(f"{where}judge scorer needs a model spec after 'judge:', such as "
                          f"judge:local:smollm2 or judge:openai:NAME@URL, got {spec!r}")
    mode = raw.get("mode", "generate")
    if mode not in JUDGE_MODES:
        raise ConfigError(f"{where}judge option 'mode' must be one of "
                          f"{', '.join(JUDGE_MODES)}, got {mode!r}")
    for name in ("concurrency", "retries", "max_tokens"):
        if raw.get(name) is not None:
            _positive(raw[name], name, where, whole=True)
    if raw.get("timeout") is not None:
        _positive(raw["timeout"], "timeout", where, whole=False)
    env = raw.get("api_key_env")
    if env is not None and (not isinstance(env, str) or not env.strip()):
        raise ConfigError(f"{where}judge option 'api_key_env' must name a variable, got {env!r}")
    return JudgeConfig(spec=spec, concurrency=raw.get("concurrency"),
                       retries=raw.get("retries"), timeout=raw.get("timeout"),
                       max_tokens=raw.get("max_tokens", 8), mode=mode, api_key_env=env)


def rubric_for(metadata: Mapping[str, Any] | None) -> Rubric:
    """The rubric of a row: ``clean_answer`` when ``metadata["reference"]`` says so, else ``gold``."""
    reference = (metadata or {}).get("reference", "gold")
    return RUBRICS["clean_answer" if reference == "clean_answer" else "gold"]


def judge_messages(rubric: Rubric, question: str, reference: str, answer: str
                   ) -> list[dict[str, str]]:
    """The chat sent to the judge for one answer (system rubric, then the case)."""
    user = rubric.user.format(question=question.strip(), reference=reference.strip(),
                              answer=answer.strip())
    return [{"role": "system", "content": rubric.system}, {"role": "user", "content": user}]


_WORD = re.compile(r"[A-Za-z]+")


def parse_verdict(text: str | None, rubric: Rubric) -> str | None:
    """The verdict word in a judge's reply, or ``None`` (unparseable).

    Case, punctuation and markdown are ignored. ``NOT CORRECT`` / ``NOT SAME`` read as
    the other verdict (``NOT`` one or two words before it). The reply is read when exactly one verdict appears in it (so
    ``"Verdict: **Correct**."`` and ``"INCORRECT - the year is wrong"`` parse); an empty
    reply, a reply with neither word or with both (``"CORRECT or INCORRECT"``) is
    unparseable.

    >>> r = RUBRICS["gold"]
    >>> parse_verdict(" **Correct.**", r), parse_verdict("not correct", r), parse_verdict("yes", r)
    ('CORRECT', 'INCORRECT', None)
    """
    if not text:
        return None
    words = [w.upper() for w in _WORD.findall(text)]
    found: set[str] = set()
    for i, word in enumerate(words):
        if word not in (rubric.right, rubric.wrong):
            continue
        negated = "NOT" in words[max(0, i - 2):i]  # "not correct", "not the same"
        if negated:
            word = rubric.wrong if word == rubric.right else rubric.right
        found.add(word)
    return found.pop() if len(found) == 1 else None


def rubric_facts() -> dict[str, Any]:
    """Every rubric's text and hash, for the run manifest."""
    return {form: {"system": r.system, "user": r.user, "verdicts": [r.right, r.wrong],
                   "sha256": r.sha256} for form, r in RUBRICS.items()}
