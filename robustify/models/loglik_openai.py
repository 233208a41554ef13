"""Log-likelihood of continuations through an OpenAI-compatible ``/completions`` endpoint.

The legacy completions endpoint with ``echo=true, logprobs=1`` returns the
log-probability of every prompt token (llama.cpp's server started with logits for all
tokens, vLLM, and other servers that follow the OpenAI format do; api.openai.com's chat
models do not). Each option is sent once as ``prompt = context + " " + option`` (the
space starts the option's first token, as lm-eval does); the option's log-likelihood is
the sum of ``token_logprobs`` over the tokens that end after the context, found from
``text_offset``, so the split does not depend on the server's tokenizer.
``max_tokens=1`` (some servers read 0 as "no limit"); the one generated token is ignored.

The context is the chat rendered as plain text (``system: ...``, ``user: ...`` lines and
an open ``assistant:`` turn): a completions endpoint applies no chat template, and the
server's template is not known here.

Known server bug: llama-cpp-python's server (0.3.x) takes each echoed token's
log-probability from the distribution *after* that token when the model adds no BOS
token (SmolLM2 is such a model), so its numbers are not the tokens' log-likelihoods;
rate such models in process with ``local:`` instead, or serve them with vLLM.

Retries and error mapping are the backend's own
(:attr:`robustify.models.openai_compat.OpenAICompatBackend.retry`).
"""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

from robustify.models.base import ModelCallError, TransientModelError, one_line

__all__ = ["aloglik", "render_chat", "continuation_loglik"]


def render_chat(messages: list[dict[str, str]]) -> str:
    """Chat messages as plain text ending with an open assistant turn."""
    lines = [f"{m.get('role', 'user')}: {m.get('content', '')}" for m in messages]
    return "\n\n".join(lines) + "\n\nassistant:"


def continuation_loglik(logprobs: Any, start: int, end: int) -> float:
    """Sum of the log-probabilities of the tokens ending after ``start`` (up to ``end``).

    A token ends where the next one starts (the last one at ``end``, the prompt's
    length), so a token that straddles the context's end counts with the option.

    Raises:
        TransientModelError: The response has no usable ``logprobs`` (a garbled body).
        ModelCallError: The server gave no log-probability for a continuation token.
    """
    if not isinstance(logprobs, dict):
        raise TransientModelError("the completion has no logprobs")
    offsets = logprobs.get("text_offset")
    values = logprobs.get("token_logprobs")
    if not isinstance(offsets, list) or not isinstance(values, list) or \
            len(offsets) != len(values):
        raise TransientModelError("the completion's logprobs lack text_offset/token_logprobs")
    total = 0.0
    counted = 0
    for index, (offset, value) in enumerate(zip(offsets, values)):
        stop = offsets[index + 1] if index + 1 < len(offsets) else end
        if not isinstance(offset, int) or not isinstance(stop, int) or stop <= start \
                or offset >= end:  # the context, or the token generated after the prompt
            continue
        if not isinstance(value, (int, float)) or math.isnan(value):
            raise ModelCallError("the server gave no log-probability for an answer token")
        total += float(value)
        counted += 1
    if not counted:
        raise ModelCallError("the server echoed no token of the answer (does it support "
                             "echo with logprobs?)")
    return total


async def aloglik(backend: Any, messages: list[dict[str, str]],
                  continuations: Sequence[str]) -> list[float]:
    """Summed log-probability of each continuation after the chat, one request each."""
    context = render_chat(messages)
    out = []
    for continuation in continuations:
        prompt = f"{context} {continuation}"
        body = await backend.retry.call(lambda p=prompt: _once(backend, p), what=backend.label)
        choice = (body.get("choices") or [None])[0]
        if not isinstance(choice, dict):
            raise TransientModelError("the completion has no choices")
        out.append(continuation_loglik(choice.get("logprobs"), len(context), len(prompt)))
    return out


async def _once(backend: Any, prompt: str) -> dict[str, Any]:
    import openai

    client = backend._client_for_running_loop()
    body = {"model": backend.model, "prompt": prompt, "max_tokens": 1, "temperature": 0.0,
            "echo": True, "logprobs": 1, **dict(backend.params.extra)}
    try:
        response = await client.post("/completions", body=body, cast_to=object)
    except openai.APIStatusError as exc:
        raise backend._status_error(exc) from None
    except openai.APITimeoutError:
        raise TransientModelError(f"request timed out after {backend.timeout:g}s") from None
    except openai.APIConnectionError:
        raise TransientModelError(f"connection error to {backend.base_url}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise TransientModelError("malformed JSON in the response body") from None
    if not isinstance(response, dict):
        raise TransientModelError(f"unexpected completion body: {one_line(response, limit=80)}")
    return response
