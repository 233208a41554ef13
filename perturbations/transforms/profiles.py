"""Profiles: named users, each a fixed recipe of transforms ("mobile_typing", "hurried").

A profile is a registered transform of family ``profile``. It applies its parts in a
documented order, each at ``severity * scale`` (capped at 1), each with its own RNG
drawn from the variant's RNG, so one spec string such as ``voice_transcript@high``
stands for a realistic mix of noise. A part may run on a share of the items only
(``share``, drawn per item from its own stream), the way a real customer adds an aside
to some messages, not to all. Parts are looked up in the registry when the profile is
applied, so this module imports even before the part modules exist.

Typed profiles (everything but ``voice_transcript``) never insert spoken fillers or
doubled words, and never tabs or line breaks inside a sentence: those are not what
people type.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

from ..base import Transform
from ..records import Item
from ..registry import get_transform, register

__all__ = ["Part", "Profile", "MobileTyping", "CustomerChat", "VoiceTranscript", "NonNative",
           "Hurried", "POLICY_ORDER", "strictest_policy", "run_steps", "part_rng",
           "TYPED_PROFILES"]

POLICY_ORDER: Mapping[str, int] = {"preserves": 0, "remaps": 1, "may_break": 2}
"""Label policies from weakest to strictest claim on the gold answer."""


def strictest_policy(policies: Any) -> str:
    """The strictest of ``policies`` (may_break > remaps > preserves)."""
    return max(policies, key=POLICY_ORDER.__getitem__, default="preserves")


@dataclass(frozen=True)
class Part:
    """One step of a profile."""

    transform: str
    """Registered transform name."""
    options: Mapping[str, str] = field(default_factory=dict)
    """Spec options, as in ``typos:kind=keyboard``."""
    scale: float = 1.0
    """The part runs at ``profile severity * scale``, capped at 1."""
    share: float = 1.0
    """Share of items the part runs on (drawn per item; 1 = every item)."""

    def spec(self) -> str:
        """This part as a spec string without severity."""
        return self.transform + "".join(f":{k}={v}" for k, v in sorted(self.options.items()))


def part_rng(rng: random.Random, index: int) -> random.Random:
    """The RNG of part ``index``: seeded from 64 bits of ``rng`` and the index.

    Every part draws its seed whether or not it runs, so changing one part's scale
    never shifts the noise of the others.
    """
    return random.Random(f"{rng.getrandbits(64)}\x1f{index}")


def run_steps(item: Item, steps: Any, rng: random.Random) -> Item:
    """Apply ``(transform, severity, share)`` steps in order, each with its own RNG.

    Every step draws 64 bits from ``rng`` whether or not it runs, so a change to one
    step never shifts another's noise. A step with ``share < 1`` runs on an item when a
    draw from a stream of its own (not the stream the transform uses) falls below the
    share, so raising the share adds items without changing the noise of the others.
    """
    out = item
    for index, (transform, severity, share) in enumerate(steps):
        bits = rng.getrandbits(64)
        if severity <= 0 or share <= 0:
            continue
        if share < 1 and random.Random(f"{bits}\x1fshare\x1f{index}").random() >= share:
            continue
        out = transform.apply(out, min(1.0, severity), random.Random(f"{bits}\x1f{index}"))
    return out


class Profile(Transform):
    """Base class of profiles: subclasses set ``PARTS`` (applied in order)."""

    PARTS: ClassVar[tuple[Part, ...]] = ()

    def parts(self) -> list[tuple[Part, Transform]]:
        """The parts with their transform instances (built from the registry now)."""
        return [(p, get_transform(p.transform)(**dict(p.options))) for p in self.PARTS]

    def apply(self, item: Item, severity: float, rng: random.Random) -> Item:
        if severity <= 0:
            return item
        steps = [(transform, severity * part.scale, part.share)
                 for part, transform in self.parts()]
        return run_steps(item, steps, rng)

    @classmethod
    def parts_policy(cls) -> str:
        """The strictest label policy among the parts (what ``label_policy`` must be)."""
        return strictest_policy(get_transform(p.transform).label_policy for p in cls.PARTS)


@register("mobile_typing", family="profile", label_policy="preserves")
class MobileTyping(Profile):
    """Someone thumb-typing on a phone: fat-finger typos, no capitals, little punctuation.

    Imitates a user typing on a small touch keyboard with auto-correct off. Applies, in
    order: ``typos:kind=keyboard`` (x1.0), ``casing:mode=lower`` (x0.6),
    ``punctuation:mode=drop`` (x0.5).

    Severity: the profile severity scales each part by its xN factor, so at 0.5
    typos run at 0.5, casing at 0.3 and punctuation at 0.25.
    Label: preserves (every part preserves the gold answer).
    """

    PARTS = (
        Part("typos", {"kind": "keyboard"}, 1.0),
        Part("casing", {"mode": "lower"}, 0.6),
        Part("punctuation", {"mode": "drop"}, 0.5),
    )


@register("customer_chat", family="profile", label_policy="preserves")
class CustomerChat(Profile):
    """A customer in a support chat: casual wording, contractions, now and then an aside.

    Imitates an impatient customer typing into a chat widget. Applies, in order:
    ``slang:style=mix`` (x0.6), ``contractions:mode=contract`` (x0.8),
    ``distractor`` (x0.5, on 25% of the items only: most customers do not talk about
    their day), ``casing:mode=lower`` (x0.5), ``typos:kind=mix`` (x0.4).

    Severity: the profile severity scales each part by its xN factor.
    Label: preserves (every part preserves the gold answer).
    """

    PARTS = (
        Part("slang", {"style": "mix"}, 0.6),
        Part("contractions", {"mode": "contract"}, 0.8),
        Part("distractor", {}, 0.5, share=0.25),
        Part("casing", {"mode": "lower"}, 0.5),
        Part("typos", {"kind": "mix"}, 0.4),
    )


@register("voice_transcript", family="profile", label_policy="preserves")
class VoiceTranscript(Profile):
    """A spoken question run through speech-to-text: homophones, fillers, no punctuation.

    Imitates a voice-assistant user whose words reach the model as a raw transcript.
    Applies, in order: ``homophones`` (x1.0), ``fillers`` (x0.8),
    ``punctuation:mode=drop`` (x1.0), ``casing:mode=lower`` (x1.0).

    Severity: the profile severity scales each part by its xN factor.
    Label: preserves (every part preserves the gold answer).
    """

    PARTS = (
        Part("homophones", {}, 1.0),
        Part("fillers", {}, 0.8),
        Part("punctuation", {"mode": "drop"}, 1.0),
        Part("casing", {"mode": "lower"}, 1.0),
    )


@register("non_native", family="profile", label_policy="preserves")
class NonNative(Profile):
    """A non-native English writer: careful full forms, misspellings, odd punctuation.

    Imitates a second-language speaker who avoids contractions, misspells longer words
    the way learners do and places punctuation and spaces unusually. Applies, in order:
    ``contractions:mode=expand`` (x1.0), ``typos:kind=misspell`` (x0.6),
    ``punctuation:mode=mix`` (x0.4), ``whitespace:mode=double`` (x0.3, on 20% of the
    items: a doubled space now and then, never a tab or a line break in a sentence).

    Severity: the profile severity scales each part by its xN factor.
    Label: preserves (every part preserves the gold answer).
    """

    PARTS = (
        Part("contractions", {"mode": "expand"}, 1.0),
        Part("typos", {"kind": "misspell"}, 0.6),
        Part("punctuation", {"mode": "mix"}, 0.4),
        Part("whitespace", {"mode": "double"}, 0.3, share=0.2),
    )


TYPED_PROFILES = ("mobile_typing", "customer_chat", "non_native", "hurried")
"""Profiles of typed text: none of them has a spoken part (fillers, doubled words)."""


@register("hurried", family="profile", label_policy="may_break")
class Hurried(Profile):
    """Someone in a rush: slang, typos, and the message sent before it was finished.

    Imitates a user typing fast between two other things. Applies, in order:
    ``slang:style=mix`` (x0.7), ``typos:kind=mix`` (x0.8), ``casing:mode=lower`` (x0.5),
    ``truncation:mode=tail`` (x0.3, so at most 30% of the words are cut).

    Severity: the profile severity scales each part by its xN factor.
    Label: may_break, from the truncation part: the cut-off end may hold what the
    answer depends on.
    """

    PARTS = (
        Part("slang", {"style": "mix"}, 0.7),
        Part("typos", {"kind": "mix"}, 0.8),
        Part("casing", {"mode": "lower"}, 0.5),
        Part("truncation", {"mode": "tail"}, 0.3),
    )
