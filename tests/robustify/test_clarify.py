"""The clarification detector on answers written the way chat models write them."""

from __future__ import annotations

import pytest

from robustify.scoring.clarify import CLARIFICATION_PATTERNS, asks_for_clarification

ASKS = [
    "Could you clarify what you mean by 'it'?",
    "Could you please clarify your question?",
    "Can you clarify which order you are talking about?",
    "Your question seems to be cut off. What would you like to know?",
    "It looks like your message was cut off before the end.",
    "It seems like your question is incomplete. Could you finish it?",
    "I'm not sure what you're referring to. Can you give me more context?",
    "I’m not sure what you’re referring to.",
    "Can you provide more details?",
    "Could you provide more information about the product?",
    "Can you give me a bit more context so I can help?",
    "It depends on which plan you mean.",
    "It depends on what you mean by cheap.",
    "What do you mean by \"the big one\"?",
    "What exactly do you mean by that?",
    "Which store are you asking about?",
    "Which city are you referring to?",
    "Did you mean the train or the bus?",
    "Are you asking about the monthly or the yearly price?",
    "I don't understand what you're asking.",
    "I don't understand your question.",
    "Sorry, the question is ambiguous: there are two accounts.",
    "Your question is a bit unclear. Do you want a refund or an exchange?",
    "Please clarify which item you want to return.",
    "Please provide more details about the error you see.",
    "I need more context to answer that.",
    "I'd need more information about your order to help.",
    "More information is needed to answer this question.",
    "Without more context, I can't say which one is correct.",
    "There is not enough information in your question to answer.",
    "It's unclear what 'that' refers to in your message.",
    "You didn't mention which product you bought.",
    "The question doesn't specify which year.",
    "Could you be more specific?",
    "Can you rephrase the question?",
    "If you could share the order number, I can look into it.",
    "What is 'it' referring to?",
    "Your sentence appears to be unfinished.",
]

ANSWERS = [
    "Paris.",
    "I think it's Paris.",
    "The capital of France is Paris.",
    "Yes.",
    "No, penguins cannot fly.",
    "42",
    "billing",
    "B. Mars",
    "Did you know that penguins can't fly? They are still birds.",
    "What a great question! The answer is 12.",
    "Can you believe it? The Moon has no air.",
    "I'm not sure, but I think it is 12.",
    "Probably Mars, though I may be wrong.",
    "It depends on the weather, but tomatoes usually need six hours of sun.",
    "Hope this helps! Let me know if you need more details.",
    "Let me know if you have any other questions.",
    "If you need more information, feel free to ask.",
    "Please let me know if there is anything else I can help with.",
    "The passage does not say the store is open on Sunday, so no.",
    "The sentence is in the past tense.",
    "To reset your password, click on 'Forgot password' on the login page.",
    "Your order has shipped and should arrive on Friday.",
    "I'm sorry for the inconvenience. A refund has been issued.",
    "The answer is yes, fish live in water.",
    "Who wrote Romeo and Juliet? William Shakespeare did.",
    "The question of free will has been debated for centuries.",
    "There are 24 students, so each group has 6.",
    "An incomplete dominance example is the pink snapdragon.",
    "Details: the plan costs 12 dollars and includes unlimited storage.",
    "Which one is bigger? Jupiter is bigger than Mars.",
    "The message is clear: always back up your data.",
    "I understand your question. The answer is Tokyo.",
    "",
    "   ",
]


@pytest.mark.parametrize("text", ASKS)
def test_detects_clarification_requests(text: str) -> None:
    assert asks_for_clarification(text) is True


@pytest.mark.parametrize("text", ANSWERS)
def test_ordinary_answers_are_not_clarification_requests(text: str) -> None:
    assert asks_for_clarification(text) is False


def test_none_is_false() -> None:
    assert asks_for_clarification(None) is False


def test_enough_phrasings_each_way() -> None:
    assert len(ASKS) >= 30 and len([a for a in ANSWERS if a.strip()]) >= 30
    assert CLARIFICATION_PATTERNS and all(p.flags & 2 for p in CLARIFICATION_PATTERNS)  # re.I


def test_case_and_spacing_do_not_matter() -> None:
    assert asks_for_clarification("COULD   YOU\nCLARIFY   WHAT YOU MEAN?")
