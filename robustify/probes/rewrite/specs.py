"""Model-written rewrites, part 1: the personas, the prompts and the ``rewrite:...`` spec strings.

Spec strings (parsed here, not by the transform registry)::

    rewrite:persona=hurried
    rewrite:persona=non_native:model=openai:gpt-4o-mini@http://127.0.0.1:8080/v1
    rewrite:persona=terse_query:temperature=0.7:judge=local:smollm2

``model=`` and ``judge=`` take a whole model spec (colons included), so put them last.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Iterable

from perturbations import Item
from perturbations.errors import ConfigError

from robustify.atomic import slug as _file_slug
from robustify.models import split_model_spec

__all__ = ["DEFAULT_REWRITER", "Persona", "PERSONAS", "SYSTEM_PROMPT", "USER_TEMPLATE",
           "JUDGE_SYSTEM", "JUDGE_TEMPLATE", "REJECTION_COLUMNS", "RewriteSpec",
           "is_rewrite_spec", "parse_rewrite_spec", "split_rewrite_specs", "rewrite_messages"]

DEFAULT_REWRITER = "local:smollm2"
"""The rewriter model when a spec names none."""


@dataclass(frozen=True)
class Persona:
    """How a persona is described to the rewriter, and what it does to the label."""

    description: str
    """Completes "Rewrite this question as ..."."""
    label_policy: str = "preserves"
    """``may_break`` for personas that may drop details the answer needs."""
    keep_spans: bool = True
    """Check that numbers, names and protected phrases survive."""


PERSONAS: dict[str, Persona] = {
    "hurried": Persona("a hurried customer typing on a phone: short, casual, lower case, "
                       "no greeting"),
    "non_native": Persona("a non-native English speaker would write it: simple words and a "
                          "few small grammar mistakes"),
    "terse_query": Persona("a terse search-engine query: only the key words, no full "
                           "sentence"),
    "vague": Persona("a vague first message to a help desk: casual and short, leaving some "
                     "details unsaid", label_policy="may_break", keep_spans=False),
    "paraphrase": Persona("a plain paraphrase that uses different words but asks exactly the "
                          "same thing"),
}
"""Built-in personas (``rewrite:persona=NAME``)."""

SYSTEM_PROMPT = ("You rewrite questions the way a particular person would type them. Keep "
                 "every number, name and detail the answer depends on. Never answer the "
                 "question, never add information, never refuse. Reply with the rewritten "
                 "question only.")
"""System message of every rewrite call (recorded in the manifest)."""

USER_TEMPLATE = ("Rewrite this question as {description}.\n\nQuestion: {question}\n\n"
                 "Rewritten question:")
"""User message template (recorded in the manifest)."""

JUDGE_SYSTEM = "You compare two questions and answer with Yes or No only."
JUDGE_TEMPLATE = ("Question 1: {original}\nQuestion 2: {rewrite}\n\nDo both questions ask for "
                  "the same thing, so that they have the same correct answer? Answer Yes or No.")

REJECTION_COLUMNS = ("item_id", "spec", "persona", "rewriter", "replicate", "reason", "reasons",
                     "rewrite", "raw", "original")
"""Columns of the rejected-rewrites frame."""

_OPTION_KEYS = ("persona", "model", "judge", "temperature", "max_tokens")


@dataclass(frozen=True)
class RewriteSpec:
    """A parsed ``rewrite:...`` spec."""

    persona: str
    """Key of :data:`PERSONAS`."""
    model: str = DEFAULT_REWRITER
    """Rewriter model spec."""
    judge: str | None = None
    """Optional judge model spec confirming the meaning."""
    temperature: float = 0.0
    """Sampling temperature of the rewriter (0: one deterministic rewrite per item)."""
    max_tokens: int = 96
    """Answer budget of a rewrite call."""
    then: str | None = None
    """A registry spec applied to each rewrite afterwards (``rewrite:...+typos@high``), in
    its canonical form; ``None`` for the rewrite alone."""

    @property
    def canonical(self) -> str:
        """The spec recorded on variants: models as slugs, defaults left out."""
        text = f"rewrite:persona={self.persona}:model={_file_slug(self.model, limit=None, empty='model')}"
        if self.temperature:
            text += f":temperature={self.temperature:g}"
        if self.max_tokens != 96:
            text += f":max_tokens={self.max_tokens}"
        if self.judge:
            text += f":judge={_file_slug(self.judge, limit=None, empty='model')}"
        return text + (f"+{self.then}" if self.then else "")

    @property
    def transform(self) -> str:
        """Transform name on variants: one per persona, so summaries keep personas apart."""
        name = f"rewrite_{self.persona}"
        if self.then:
            from perturbations import parse_spec

            name += "+" + parse_spec(self.then).transform
        return name

    @property
    def label_policy(self) -> str:
        """The persona's label policy (``may_break`` for ``vague``), or the composed part's
        when that is stricter."""
        policy = PERSONAS[self.persona].label_policy
        if self.then:
            from perturbations import parse_spec

            order = ("preserves", "remaps", "may_break")
            policy = max(policy, parse_spec(self.then).label_policy, key=order.index)
        return policy

    def __str__(self) -> str:
        return self.canonical


def is_rewrite_spec(text: str) -> bool:
    """True for ``rewrite`` / ``rewrite:...`` specs."""
    text = str(text).strip()
    return text == "rewrite" or text.startswith("rewrite:")


def _split_then(raw: str) -> tuple[str, str | None]:
    """``rewrite:...+typos@high`` -> (``rewrite:...``, ``typos@0.8``): the first ``+`` after
    which the rest parses as a registry spec starts the composed part (a model spec may hold
    a ``+`` of its own)."""
    from perturbations import parse_spec

    start = 0
    while (plus := raw.find("+", start)) != -1:
        try:
            spec = parse_spec(raw[plus + 1:])
        except ConfigError:
            start = plus + 1
            continue
        if spec.severity is None:
            raise ConfigError(f"rewrite spec {raw!r}: the part after '+' needs its own "
                              f"severity (e.g. +typos@high): a rewrite has none to share")
        return raw[:plus], str(spec)
    return raw, None


def parse_rewrite_spec(text: str | RewriteSpec) -> RewriteSpec:
    """Parse ``rewrite:persona=NAME[:temperature=T][:max_tokens=N][:judge=SPEC][:model=SPEC]``,
    optionally followed by ``+SPEC``: a registry spec (with its severity) applied to each
    rewrite, as a composed spec of the registry applies its parts in order.

    Raises:
        ConfigError: not a rewrite spec, unknown option or persona, bad number, or a
            model spec that is malformed.
    """
    if isinstance(text, RewriteSpec):
        return text
    raw = str(text).strip()
    if not is_rewrite_spec(raw):
        raise ConfigError(f"{raw!r} is not a rewrite spec (expected rewrite:persona=NAME...)")
    raw, then = _split_then(raw)
    body = raw[len("rewrite"):]
    options: dict[str, str] = {}
    if body:
        # split only before a known key, so model specs keep their own colons
        pieces = re.split(r":(?=(?:" + "|".join(_OPTION_KEYS) + r")=)", body)
        if pieces[0]:
            raise ConfigError(f"rewrite spec {raw!r}: cannot read {pieces[0]!r}; options are "
                              f"{', '.join(_OPTION_KEYS)}")
        for piece in pieces[1:]:
            key, _, value = piece.partition("=")
            if key in options:
                raise ConfigError(f"rewrite spec {raw!r}: option {key!r} given twice")
            options[key] = value.strip()
    persona = options.get("persona", "")
    if persona not in PERSONAS:
        close = difflib.get_close_matches(persona, PERSONAS, n=2)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise ConfigError(f"rewrite spec {raw!r}: unknown persona {persona!r}{hint} "
                          f"(personas: {', '.join(PERSONAS)})")
    try:
        temperature = float(options.get("temperature", 0.0))
        max_tokens = int(options.get("max_tokens", 96))
    except ValueError:
        raise ConfigError(f"rewrite spec {raw!r}: temperature must be a number and "
                          f"max_tokens a whole number") from None
    if not 0.0 <= temperature <= 2.0 or max_tokens < 8:
        raise ConfigError(f"rewrite spec {raw!r}: temperature must lie in [0, 2] and "
                          f"max_tokens be at least 8")
    model = options.get("model") or DEFAULT_REWRITER
    split_model_spec(model)  # fails now, with the accepted forms, rather than mid-run
    judge = options.get("judge") or None
    if judge:
        split_model_spec(judge)
    return RewriteSpec(persona=persona, model=model, judge=judge, temperature=temperature,
                       max_tokens=max_tokens, then=then)


def split_rewrite_specs(specs: Iterable[str]) -> tuple[list[str], list[RewriteSpec]]:
    """Separate ``rewrite:...`` specs (parsed) from registry transform specs (kept as text).

    Lets a job's ``transforms`` list mix both: pass the first list to
    :func:`perturbations.parse_spec_list` as before, the second to
    :func:`run_rewrite_specs`.
    """
    regular: list[str] = []
    rewrites: list[RewriteSpec] = []
    for spec in specs:
        if is_rewrite_spec(spec):
            rewrites.append(parse_rewrite_spec(spec))
        else:
            regular.append(spec)
    return regular, rewrites


# ------------------------------------------------------------------------ prompts

def rewrite_messages(item: Item, persona: str) -> list[dict[str, str]]:
    """The chat messages asking for one rewrite of ``item.input`` in ``persona``."""
    description = PERSONAS[persona].description
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": USER_TEMPLATE.format(description=description,
                                                             question=item.input)}]
