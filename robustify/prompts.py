"""What the model is asked: one prompt template per task kind, rendered to chat messages.

A template splits a prompt into the part a user would have typed and the part the
evaluator adds. Only the item's ``input`` (and its ``context`` and ``choices``) come from
the possibly perturbed item; the system message, the answer-format instruction and the
few-shot examples belong to the template. A typo in the question therefore never
garbles the instruction that tells the model how to answer, and the few-shot examples
are always shown clean, whatever transform was applied to the item.

>>> from perturbations import Item
>>> item = Item(id="fact-1", input="What is the capital city of Italy?", target="Rome")
>>> [m["role"] for m in build_messages(item)]
['system', 'user', 'assistant', 'user', 'assistant', 'user']

Templates can be overridden per task kind from a YAML or JSON file with
:func:`load_templates`; fields left out keep their default.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from perturbations.errors import ConfigError, DataError
from perturbations.records import TASK_KINDS, Item, choice_letter

__all__ = [
    "PromptTemplate",
    "INTENT_LABELS",
    "DEFAULT_TEMPLATES",
    "PLACEHOLDERS",
    "build_messages",
    "render_user",
    "render_shot_answer",
    "load_templates",
    "TASK_GENERATION",
    "task_params",
    "with_user_shots",
]

log = logging.getLogger(__name__)

PLACEHOLDERS = frozenset({"input", "context_block", "choices_block", "choices_inline",
                          "labels", "answer_instruction"})
"""Names a ``user`` or ``system`` template may use in ``{braces}``."""

_SHOT_PLACEHOLDERS = frozenset({"target", "letter", "choice", "metadata"})


@dataclass(frozen=True)
class PromptTemplate:
    """How items of one task kind are put to a chat model.

    ``system`` and ``user`` are :meth:`str.format` templates. Placeholders:
    ``{input}`` (the question), ``{context_block}`` (``"Passage: ...\\n\\n"`` or empty),
    ``{choices_block}`` (one ``"A. option"`` line per choice, preceded by a newline, or
    empty), ``{choices_inline}`` (``"Venus, Mars, Jupiter or Neptune"``; every option in
    double quotes when one of them has a comma), ``{labels}`` (the item's
    ``metadata["labels"]`` joined by ", ") and
    ``{answer_instruction}``. When ``user`` does not place ``{answer_instruction}``
    itself, the instruction is appended to the user message after a blank line.
    """

    system: str
    """System message (may use ``{labels}``); empty string = no system message."""
    user: str
    """User message template wrapping the item's own text."""
    answer_instruction: str
    """The answer-format request ("Answer with yes or no."); owned by the template so a
    perturbed question never loses it."""
    few_shot: tuple[Item, ...] = ()
    """Worked examples shown as earlier user/assistant turns, always unperturbed."""
    shot_answer: str = "{target}"
    """Template of an example's assistant turn: ``{target}``, ``{letter}`` (the target
    letter), ``{choice}`` (the text of the target option, multiple choice only) and
    ``{metadata[key]}`` (a field of the example's metadata, e.g. a worked solution)."""

    def __post_init__(self) -> None:
        if not isinstance(self.few_shot, tuple):
            object.__setattr__(self, "few_shot", tuple(self.few_shot))
        for name in ("system", "user", "answer_instruction", "shot_answer"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"prompt template field {name!r} must be a string")
        allowed = {"system": PLACEHOLDERS, "user": PLACEHOLDERS,
                   "shot_answer": _SHOT_PLACEHOLDERS}
        for name, names in allowed.items():
            unknown = _placeholders(getattr(self, name), name) - names
            if unknown:
                raise ConfigError(f"prompt template field {name!r} uses unknown placeholder(s) "
                                  f"{', '.join(sorted(unknown))} (allowed: "
                                  f"{', '.join(sorted(names))})")


def _placeholders(template: str, field_name: str) -> set[str]:
    try:
        # "{metadata[solution]}" is the field "metadata" indexed
        return {re.split(r"[.\[]", name, maxsplit=1)[0]
                for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:  # unbalanced braces
        raise ConfigError(f"prompt template field {field_name!r} is not a valid format "
                          f"string: {exc}") from None


# --- default templates -------------------------------------------------------------
#
# The embedded default model is SmolLM2-135M-Instruct; these templates were chosen with
# scripts/calibrate_sample.py (see docs/sample-and-scoring.md) and stay ordinary prompts
# that any chat model answers well. What mattered for the small model: worked examples
# whose assistant turns already have the wanted format; for multiple choice, options
# listed inline *before* the question and answered by their text (letters it picks
# near chance); for arithmetic, writing the calculation before the result; for intents,
# one example per label. The examples are written for this project and do not overlap
# the built-in sample.

_MC_SHOTS = (
    Item(id="shot-mc-1", task="multiple_choice",
         input="Which animal is the largest mammal living in the ocean today?",
         choices=("Dolphin", "Blue whale", "Shark", "Seal"), target="B"),
    Item(id="shot-mc-2", task="multiple_choice",
         input="What do plants need from the sun to make their own food?",
         choices=("Light", "Sand", "Salt", "Smoke"), target="A"),
)

_YN_SHOTS = (
    Item(id="shot-yn-1", task="yes_no",
         context="The library opens at nine in the morning and closes at six in the "
                 "evening, Monday to Saturday. It is closed on Sundays.",
         input="Is the library open on Sunday afternoons for visitors?", target="No"),
    Item(id="shot-yn-2", task="yes_no",
         context="Our bakery sells fresh bread every morning. All of our loaves are "
                 "baked on site before the shop opens.",
         input="Is the bread at this bakery baked on site?", target="Yes"),
)

_NUM_SHOTS = (
    Item(id="shot-num-1", task="numeric",
         input="A box holds 6 eggs. How many eggs are in 3 boxes altogether?",
         target="18", metadata={"solution": "6 x 3 = 18"}),
    Item(id="shot-num-2", task="numeric",
         input="I had 20 dollars and spent 5 dollars on lunch. How many dollars do I have left?",
         target="15", metadata={"solution": "20 - 5 = 15"}),
    Item(id="shot-num-3", task="numeric",
         input="Sam has 4 pens and buys 3 more pens. How many pens does Sam have now?",
         target="7", metadata={"solution": "4 + 3 = 7"}),
)

INTENT_LABELS = ("billing", "cancel_subscription", "reset_password", "shipping_status",
                 "refund", "technical_issue", "update_profile")
"""The customer-support intents of the built-in sample (and of the default examples)."""


def _intent_shot(n: int, text: str, label: str) -> Item:
    return Item(id=f"shot-intent-{n}", task="classification", input=text, target=label,
                metadata={"labels": list(INTENT_LABELS)})


# One example per label; the order was measured: the label of a late example is the one
# a small model over-predicts, so the most specific labels come last.
_INTENT_SHOTS = (
    _intent_shot(1, "Where is my package? It was supposed to arrive yesterday.",
                 "shipping_status"),
    _intent_shot(2, "The app crashes every time I open the settings page.", "technical_issue"),
    _intent_shot(3, "Why was I charged 30 dollars on my card this month?", "billing"),
    _intent_shot(4, "I can't remember my password, please help me get back into my account.",
                 "reset_password"),
    _intent_shot(5, "The blender arrived broken, I would like my money back.", "refund"),
    _intent_shot(6, "Please change the email address on my profile to my new one.",
                 "update_profile"),
    _intent_shot(7, "I want to stop my membership and not be charged again next month.",
                 "cancel_subscription"),
)

_FACT_SHOTS = (
    Item(id="shot-fact-1", input="What is the capital city of Japan?", target="Tokyo"),
    Item(id="shot-fact-2", input="How many legs does a spider have?", target="8"),
)

_OPEN_SHOTS = (
    Item(id="shot-open-1", task="open", input="how do i change the email on my account",
         target="Open Settings, choose Account and edit the email address. We send a "
                "confirmation link to the new address."),
    Item(id="shot-open-2", task="open", input="Do you deliver on weekends?",
         target="Yes, we deliver on Saturdays. There are no deliveries on Sundays."),
)

DEFAULT_TEMPLATES: dict[str, PromptTemplate] = {
    "multiple_choice": PromptTemplate(
        system="Answer with one of the given options.",
        user="Choose from: {choices_inline}.\n{input}",
        answer_instruction="",
        few_shot=_MC_SHOTS,
        shot_answer="{choice}",
    ),
    "yes_no": PromptTemplate(
        system="You read a passage and answer a question about it. Reply with Yes or No.",
        user="{context_block}Question: {input}",
        answer_instruction="Answer with Yes or No.",
        few_shot=_YN_SHOTS,
    ),
    "numeric": PromptTemplate(
        system="You solve short math word problems. Write the calculation, then the result.",
        user="{input}",
        answer_instruction="",
        few_shot=_NUM_SHOTS,
        shot_answer="{metadata[solution]}",
    ),
    "classification": PromptTemplate(
        system="You sort customer messages into categories. The categories are: "
               "{labels}. Reply with exactly one category name.",
        user="{context_block}Message: {input}",
        answer_instruction="Category:",
        few_shot=_INTENT_SHOTS,
    ),
    "short_answer": PromptTemplate(
        system="You answer questions with a short fact: a word, a name, a number or a "
               "short phrase.",
        user="{context_block}{input}",
        answer_instruction="",
        few_shot=_FACT_SHOTS,
    ),
    # Real traffic: the message as the user typed it; two worked replies show the length
    # wanted (short enough to compare one answer with another).
    "open": PromptTemplate(
        system="You are a helpful assistant. Reply to the user's message in one to three "
               "sentences.",
        user="{context_block}{input}",
        answer_instruction="",
        few_shot=_OPEN_SHOTS,
    ),
}
"""One template per task kind in :data:`perturbations.records.TASK_KINDS`."""


TASK_GENERATION: dict[str, dict[str, Any]] = {
    "numeric": {"max_tokens": 256},
    "open": {"max_tokens": 128},
}
"""Generation parameters each task kind gets unless the model's own parameters set them.

The default answer budget (48 tokens, :class:`robustify.records.GenerationParams`) fits
a letter, a label, yes/no or a short fact. A worked calculation needs more: at 48 tokens
SmolLM2 had 82% of its arithmetic answers cut before the result, which the numeric
scorer then read as the last number written. A free answer (``open``) gets 128 tokens:
one to three sentences. Kinds not listed keep the model's parameters.
A job file's ``generation: {numeric: {max_tokens: 512}}`` overrides this table."""


def task_params(task: str, explicit: Mapping[str, Any],
                overrides: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The generation parameters a task kind changes for one model.

    Args:
        task: The item's task kind.
        explicit: The parameters the user set for the model (they beat the table).
        overrides: A job's ``generation`` section: task kind -> parameters, which beat
            both the table and the model's own parameters.

    Returns:
        Only the changed parameters (empty when the task kind keeps the model's).
    """
    changes = {k: v for k, v in TASK_GENERATION.get(task, {}).items() if k not in explicit}
    changes.update((overrides or {}).get(task, {}))
    return changes


def with_user_shots(templates: Mapping[str, PromptTemplate] | None,
                    shots: Mapping[str, list[Item]]) -> dict[str, PromptTemplate]:
    """Templates whose few-shot examples are the user's own rows (``--fewshot K``).

    Args:
        templates: Templates by task kind (``None``: the defaults).
        shots: Task kind -> the rows to show as examples (clean, never evaluated).

    An example's assistant turn keeps the template's ``shot_answer`` when every row has
    what it needs (e.g. ``metadata["solution"]``), else it is the row's gold answer
    (the option text for multiple choice).
    """
    out = dict(DEFAULT_TEMPLATES)
    out.update(templates or {})
    for kind, rows in shots.items():
        template = out[kind]
        answer = template.shot_answer
        try:
            for row in rows:
                render_shot_answer(row, template)
        except ConfigError:
            answer = "{choice}" if kind == "multiple_choice" else "{target}"
        out[kind] = dataclasses.replace(template, few_shot=tuple(rows), shot_answer=answer)
    return out


# --- rendering ---------------------------------------------------------------------

def _labels(item: Item) -> list[str]:
    labels = item.metadata.get("labels")
    if labels:
        return [str(label) for label in labels]
    aliases = item.metadata.get("aliases")
    if isinstance(aliases, Mapping) and aliases:
        return [str(label) for label in aliases]
    return []


def _inline(choices: tuple[str, ...]) -> str:
    if not choices:
        return ""
    if len(choices) == 1:
        return choices[0]
    if any("," in c for c in choices):
        # an option with its own comma would blur the list: quote every option
        choices = tuple(f'"{c}"' for c in choices)
    return ", ".join(choices[:-1]) + " or " + choices[-1]


def _fields(item: Item, template: PromptTemplate) -> dict[str, str]:
    context_block = f"Passage: {item.context.strip()}\n\n" if item.context else ""
    if item.choices:
        choices_block = "\n" + "\n".join(f"{choice_letter(i)}. {c}"
                                         for i, c in enumerate(item.choices))
    else:
        choices_block = ""
    return {
        "input": item.input,
        "context_block": context_block,
        "choices_block": choices_block,
        "choices_inline": _inline(item.choices or ()),
        "labels": ", ".join(_labels(item)),
        "answer_instruction": template.answer_instruction,
    }


def render_user(item: Item, template: PromptTemplate) -> str:
    """Render the user turn for ``item`` (question, passage, options, instruction)."""
    text = template.user.format(**_fields(item, template))
    if template.answer_instruction and "{answer_instruction}" not in template.user:
        text = f"{text}\n\n{template.answer_instruction}"
    return text


def render_shot_answer(item: Item, template: PromptTemplate) -> str:
    """Render the assistant turn of a few-shot example from its gold target."""
    choice = ""
    if item.choices and len(item.target) == 1 and item.target.isalpha():
        index = ord(item.target.upper()) - ord("A")
        if 0 <= index < len(item.choices):
            choice = item.choices[index]
    try:
        return template.shot_answer.format(target=item.target, letter=item.target,
                                           choice=choice, metadata=dict(item.metadata))
    except (KeyError, IndexError) as exc:
        raise ConfigError(f"few-shot example {item.id!r}: shot_answer "
                          f"{template.shot_answer!r} needs {exc} in its metadata") from None


def _shot_fits(shot: Item, item_labels: set[str] | None) -> bool:
    # A classification example that declares its label set only helps items with that
    # same set: the built-in intent examples would mislead a model on, say, a sentiment
    # data set. An example without declared labels (a user's own) is always shown.
    # ``item_labels`` is None for other task kinds (every example fits).
    if item_labels is None:
        return True
    shot_labels = set(_labels(shot))
    return not shot_labels or shot_labels == item_labels


def build_messages(item: Item,
                   templates: Mapping[str, PromptTemplate] | None = None) -> list[dict[str, str]]:
    """Turn an item into chat messages for its task kind.

    Args:
        item: The (possibly perturbed) item. Only its ``input``, ``context``,
            ``choices`` and ``metadata["labels"]`` reach the prompt.
        templates: Templates by task kind; kinds missing from it fall back to
            :data:`DEFAULT_TEMPLATES`.

    Returns:
        ``[system, (user, assistant)*, user]`` as ``{"role": ..., "content": ...}`` dicts:
        the system message (left out when the template's is empty), one clean
        user/assistant pair per few-shot example, then the item's own user turn.
        Classification examples that declare a label set different from the item's
        are skipped.
    """
    template = (templates or {}).get(item.task) or DEFAULT_TEMPLATES[item.task]
    messages: list[dict[str, str]] = []
    system = template.system.format(**_fields(item, template))
    if system:
        messages.append({"role": "system", "content": system})
    # the item's label set once, not once per example (77 labels x 16 examples per prompt)
    item_labels = set(_labels(item)) if item.task == "classification" and template.few_shot \
        else None
    for shot in template.few_shot:
        if not _shot_fits(shot, item_labels):
            continue
        messages.append({"role": "user", "content": render_user(shot, template)})
        messages.append({"role": "assistant", "content": render_shot_answer(shot, template)})
    messages.append({"role": "user", "content": render_user(item, template)})
    return messages


# --- user overrides ----------------------------------------------------------------

_TEMPLATE_KEYS = frozenset(f.name for f in dataclasses.fields(PromptTemplate))


def _read_mapping(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    try:
        import yaml
    except ImportError:  # pragma: no cover - pyyaml is a hard dependency
        raise ConfigError(f"{path}: reading YAML needs pyyaml (pip install pyyaml)") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None


def _shot_item(raw: Any, path: Path, kind: str, index: int) -> Item:
    where = f"{path}: {kind}.few_shot[{index}]"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping with input and target")
    data = {"id": f"shot-{kind}-{index + 1}", "task": kind, **raw}
    unknown = set(data) - {"id", "input", "target", "context", "choices", "task", "metadata"}
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    if "input" not in data or "target" not in data:
        raise ConfigError(f"{where}: needs 'input' and 'target'")
    try:
        return Item.from_dict(data)
    except DataError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def load_templates(path: str | Path) -> dict[str, PromptTemplate]:
    """Read prompt template overrides from a YAML or JSON file.

    The file maps task kinds to the fields to change; others keep their default::

        yes_no:
          system: "Answer the question about the passage."
          answer_instruction: "Reply with Yes or No only."
          few_shot:
            - {input: "Is water wet?", target: "yes", context: "Water is a liquid."}

    Args:
        path: A ``.json``, ``.yaml`` or ``.yml`` file.

    Returns:
        A complete mapping (every task kind) of the defaults with the overrides applied.

    Raises:
        ConfigError: the file is unreadable or malformed, or names an unknown task kind,
            template field or placeholder; the message names the file and the key.
    """
    path = Path(path)
    if path.exists() and not path.is_file():
        raise ConfigError(f"{path}: not a regular file, expected a prompt template file")
    try:
        raw = _read_mapping(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read prompt templates: {exc.strerror}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: expected a mapping of task kind to template fields")
    templates = dict(DEFAULT_TEMPLATES)
    for kind, fields in raw.items():
        if kind not in TASK_KINDS:
            raise ConfigError(f"{path}: unknown key {kind!r} (task kinds: "
                              f"{', '.join(TASK_KINDS)})")
        if not isinstance(fields, Mapping):
            raise ConfigError(f"{path}: {kind}: expected a mapping of template fields")
        changes: dict[str, Any] = {}
        for key, value in fields.items():
            if key not in _TEMPLATE_KEYS:
                raise ConfigError(f"{path}: unknown key {kind}.{key!s} (fields: "
                                  f"{', '.join(sorted(_TEMPLATE_KEYS))})")
            if key == "few_shot":
                if not isinstance(value, list):
                    raise ConfigError(f"{path}: {kind}.few_shot must be a list")
                value = tuple(_shot_item(v, path, kind, i) for i, v in enumerate(value))
            elif value is None:
                value = ""
            changes[key] = value
        try:
            templates[kind] = dataclasses.replace(templates[kind], **changes)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {kind}: {exc}") from None
        log.debug("prompt template %s overridden from %s: %s", kind, path, sorted(changes))
    return templates
