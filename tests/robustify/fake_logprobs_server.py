"""A loopback OpenAI-compatible server that also serves ``POST /v1/completions`` with
``echo`` and ``logprobs``, as llama.cpp's server and vLLM do, for log-likelihood tests.

One token per character; the log-probability of a character is :func:`char_logprob`
(known exactly, so a test can compute the expected sums itself). The first echoed
token has no log-probability (``None``, as the OpenAI format has it), and one generated
token ``"!"`` follows the prompt, which the client must not count. Chat completions
answer as :class:`FakeOpenAIServer` does, with ``finish_reason`` set to
:attr:`FakeLogprobsServer.finish_reason`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.robustify.fake_openai_server import FakeOpenAIServer

__all__ = ["FakeLogprobsServer", "char_logprob"]


def char_logprob(char: str) -> float:
    """The fake model's log-probability of one character."""
    return -0.1 - (ord(char) % 7) / 10


class FakeLogprobsServer(FakeOpenAIServer):
    """:class:`FakeOpenAIServer` plus a completions endpoint with prompt log-probabilities."""

    finish_reason = "stop"
    """``finish_reason`` of every chat completion (``"length"`` to mimic a cut answer)."""

    completions_prompts: list[str]

    def start(self) -> "FakeLogprobsServer":
        self.completions_prompts = []
        super().start()
        return self

    async def _dispatch(self, method: str, path: str, headers: dict[str, str], raw: bytes,
                        writer: asyncio.StreamWriter) -> bool:
        if method == "POST" and path.endswith("/completions") and \
                not path.endswith("/chat/completions"):
            import json

            body = json.loads(raw or b"{}")
            prompt = str(body.get("prompt", ""))
            self.completions_prompts.append(prompt)
            payload = self._logprobs_body(prompt, echo=bool(body.get("echo")))
            data = json.dumps(payload).encode()
            head = ("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\nConnection: keep-alive\r\n\r\n")
            writer.write(head.encode("latin-1") + data)
            await writer.drain()
            return True
        return await super()._dispatch(method, path, headers, raw, writer)

    def _logprobs_body(self, prompt: str, *, echo: bool) -> dict[str, Any]:
        text = prompt + "!" if echo else "!"
        offsets = list(range(len(text)))
        values: list[float | None] = [char_logprob(c) for c in text]
        if echo and values:
            values[0] = None
        return {"id": "cmpl-fake", "object": "text_completion", "model": self.model,
                "choices": [{"index": 0, "text": text, "finish_reason": "length",
                             "logprobs": {"tokens": list(text), "text_offset": offsets,
                                          "token_logprobs": values,
                                          "top_logprobs": [None] * len(text)}}]}

    def _completion_body(self, body: dict[str, Any], messages: list[dict[str, Any]]
                         ) -> dict[str, Any]:
        out = super()._completion_body(body, messages)
        out["choices"][0]["finish_reason"] = self.finish_reason
        return out
