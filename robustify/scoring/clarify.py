"""Does an answer ask for clarification instead of answering?

Transforms with the ``may_break`` label policy (ambiguity, heavy truncation) can leave a
question that no longer has one right answer. For those, asking back ("Could you
clarify what you mean by 'it'?") or pointing out the problem ("Your question seems to
be cut off.") is the good behaviour, and the report counts how often a model does it
instead of guessing. :func:`asks_for_clarification` is the detector: a set of regular
expressions over the normalised answer, tuned to miss ordinary answers that merely
contain a question mark ("Did you know ...?"), hedge ("I think it's Paris") or close
with a customer-service courtesy ("Let me know if you need more details.").

>>> asks_for_clarification("Could you clarify what you mean by 'it'?")
True
>>> asks_for_clarification("I think it's Paris.")
False
"""

from __future__ import annotations

import re

__all__ = ["asks_for_clarification", "CLARIFICATION_PATTERNS"]

_SUBJECT = r"(?:question|message|sentence|request|query|text|input|prompt)"
_PROBLEM = (r"(?:cut off|cut short|incomplete|unfinished|truncated|not complete|"
            r"not finished|unclear|not clear|ambiguous|vague|missing|garbled|"
            r"hard to understand|difficult to understand|confusing)")
_DETAILS = r"(?:details?|information|info|context|specifics)"
_REFER = r"(?:referring to|refering to|asking about|asking for|asking|talking about|mean|meaning)"

CLARIFICATION_PATTERNS: tuple[re.Pattern[str], ...] = tuple(re.compile(p, re.IGNORECASE) for p in (
    # direct requests to clarify / specify / rephrase
    r"\b(?:could|can|would|will) you (?:please |kindly )?(?:clarify|specify|elaborate|rephrase|"
    r"restate|explain what you mean|explain what you are asking|be more specific|tell me more|"
    r"tell me what you mean|tell me which|tell me what (?:\w+ ){0,2}you|let me know which|"
    r"let me know what you mean|complete (?:your|the) (?:question|sentence))",
    r"\b(?:could|can|would) you (?:please |kindly )?(?:provide|give|share|add|offer) "
    rf"(?:me )?(?:a (?:bit|little) )?(?:more|some more|additional|further|some) {_DETAILS}",
    r"\bif you (?:could|can) (?:please )?(?:provide|give|share|clarify|specify|tell me|"
    r"explain|rephrase)\b",
    r"^(?:please |kindly )?(?:clarify|specify|rephrase|elaborate)\b",
    rf"\bplease (?:clarify|specify|rephrase|elaborate|provide more {_DETAILS}|"
    rf"provide (?:some )?(?:additional|further) {_DETAILS}|complete your (?:question|sentence)|"
    r"finish your (?:question|sentence))",
    # "what do you mean by ...", "which one do you mean?", "what is 'it' referring to?"
    r"\bwhat (?:exactly )?do you mean\b",
    r"\bwhat (?:exactly )?(?:are|were) you (?:referring|refering|asking|talking)\b",
    r"\bwhich (?:\w+ ){0,3}(?:are|were|do|did) you (?:referring|refering|asking|talking|mean)\b",
    r"\bwhat (?:is|does) ['\"“‘]?[\w ]{1,30}?['\"”’]? (?:refer|referring) to\b",
    r"\b(?:do|did) you mean\b[^.!]*\?",
    r"\bare you asking (?:about|whether|if|for)\b",
    r"\b(?:who|what|which) (?:\w+ ){0,2}(?:is|are) ['\"“‘]?(?:it|they|he|she|this|that|them)"
    r"['\"”’]? (?:in your question|here)\b",
    # "I'm not sure what you're referring to", "I don't understand what you're asking"
    r"\bi(?:'m| am|’m) (?:not sure|unsure|not certain|uncertain|confused about) "
    rf"(?:what|which|who|whom|whether|exactly what) (?:\w+ ){{0,4}}?"
    rf"(?:you(?:'re| are|’re)? )?{_REFER}\b",
    r"\bi (?:don't|do not|don’t|can't|cannot|can’t) (?:quite )?(?:understand|tell|work out|"
    rf"figure out|determine) (?:what|which|who|exactly what) (?:\w+ ){{0,4}}?"
    rf"(?:you(?:'re| are|’re)? )?(?:{_REFER}|refers to|is meant)",
    r"\bi (?:don't|do not|don’t) (?:quite )?understand (?:your|the) "
    r"(?:question|request|message)\b",
    r"\bnot sure what ['\"“‘]?\w+['\"”’]? refers to\b",
    # "Your question seems to be cut off", "the question is ambiguous"
    rf"\b(?:your|the|this) {_SUBJECT}\b[^.?!]{{0,40}}?\b(?:is|was|seems|appears|looks|got|"
    rf"has been|might be|may be)\b[^.?!]{{0,25}}?\b{_PROBLEM}",
    r"\b(?:it|this) (?:seems|looks|appears) (?:like|as if|as though|that) (?:your|the) "
    rf"{_SUBJECT} [^.?!]{{0,40}}\b(?:{_PROBLEM}|(?:was|got) cut|didn't finish|did not finish|"
    r"ends? (?:abruptly|mid))",
    r"\b(?:you|your (?:message|question)) (?:didn't|did not|haven't|have not|never) "
    r"(?:finish|complete|specify|mention|say|tell me|state|include)\b",
    r"\b(?:the|your) (?:question|message) (?:doesn't|does not|didn't|did not) "
    r"(?:specify|say|mention|include|make clear|state)\b",
    r"\b(?:is|seems|appears|looks) (?:to be )?(?:incomplete|cut off|unfinished|truncated)\b",
    r"\bthe rest of (?:your|the) (?:question|sentence|message)\b",
    # "I need more context", "more information is needed", "without more details"
    r"\b(?:i|we)(?: would| will|'d|’d)? need (?:a (?:bit|little) )?"
    r"(?:more|additional|further|some more) "
    rf"{_DETAILS}\b",
    rf"\b(?:more|additional|further) {_DETAILS} (?:is|are|would be|will be) "
    r"(?:needed|required|necessary)\b",
    rf"\b(?:without|with no) (?:more|additional|further|any|enough) {_DETAILS}\b",
    rf"\b(?:not enough|insufficient|missing) {_DETAILS}\b",
    r"\b(?:is|it's|it is|it’s) (?:unclear|not clear) (?:what|which|who|whether|from your)\b",
    # "It depends on which ..."
    r"\bit (?:really )?depends (?:on )?(?:which|what|who|whom|whether|exactly)\b",
))
"""The patterns :func:`asks_for_clarification` tries, case-insensitively."""

# Closing courtesies that mention details without asking for them.
_COURTESY = re.compile(
    r"\b(?:let me know|feel free to ask|don't hesitate|do not hesitate|if you (?:need|have|"
    r"want|would like)|hope (?:this|that) helps)\b[^.?!]*[.?!]?", re.IGNORECASE)


def asks_for_clarification(text: str | None) -> bool:
    """True when ``text`` asks for clarification or says the question is unclear or incomplete.

    Args:
        text: A model answer; ``None`` (failed call) and empty text are False.

    Returns:
        True for answers such as "Could you clarify what you mean by 'it'?", "Your
        question seems to be cut off.", "I'm not sure what you're referring to", "Can you
        provide more details?" or "It depends on which one you mean"; False for
        ordinary answers, hedged ones, and ones that only close with an offer of help.
    """
    if not text or not text.strip():
        return False
    # Typographic apostrophes are common in chat output; one spelling keeps patterns short.
    cleaned = text.replace("’", "'").replace("‘", "'")
    cleaned = _COURTESY.sub(" ", cleaned)
    cleaned = " ".join(cleaned.split())
    return any(p.search(cleaned) for p in CLARIFICATION_PATTERNS)
