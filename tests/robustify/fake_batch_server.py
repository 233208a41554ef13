"""A loopback implementation of the OpenAI Files and Batches APIs (and chat completions).

Enough of the real API for the ``openai`` client: ``POST /v1/files`` (multipart upload,
``purpose=batch``), ``GET /v1/files/{id}`` and ``/v1/files/{id}/content``,
``POST /v1/batches``, ``GET /v1/batches/{id}``, ``GET /v1/batches`` (list) and
``POST /v1/batches/{id}/cancel``, plus ``POST /v1/chat/completions`` answering with the
same reply, so a normal run and a batch run against one base URL share cache keys.

Behaviour on demand:

* ``delay``: seconds before a batch completes (it is ``validating``, then
  ``in_progress``, meanwhile);
* ``hold``: batches stay ``in_progress`` until :meth:`FakeBatchServer.release`;
* ``fail_when``: requests whose prompt contains this text fail (HTTP 400 in the error
  file), the others succeed: partial failures;
* ``expire``: the first N batches expire, having answered only ``expire_keep`` of their
  requests (the rest land in the error file as ``batch_expired``);
* ``api_key``: every request must carry ``Authorization: Bearer <api_key>`` (else 401);
* ``junk``: raw lines added to every output file (an unreadable line, an answer for a
  request that was never asked).

Every batch runs its requests through the reply function when it finishes, so its
answers equal those of ``/v1/chat/completions``. Counters (:attr:`uploads`,
:attr:`creates`, :attr:`chat_calls` ...) let tests prove what was (not) submitted.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Sequence

__all__ = ["FakeBatchServer", "default_reply"]


def default_reply(messages: Sequence[dict[str, Any]]) -> str:
    """``"echo: "`` plus the last user message (as the fake chat server answers)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return f"echo: {message.get('content')}"
    return "echo:"


class FakeBatchServer:
    """See the module docstring. Use as a context manager; :attr:`base_url` ends in ``/v1``."""

    def __init__(self, *, delay: float = 0.0, hold: bool = False, fail_when: str | None = None,
                 expire: int = 0, expire_keep: float = 0.5, api_key: str | None = None,
                 junk: Sequence[bytes] = (),
                 reply: Callable[[Sequence[dict[str, Any]]], str] = default_reply) -> None:
        self.delay = delay
        self.hold = hold
        self.fail_when = fail_when
        self.expire = expire
        self.expire_keep = expire_keep
        self.api_key = api_key
        self.junk = list(junk)
        self.reply = reply
        self.files: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.uploads = 0
        self.creates = 0
        self.retrieves = 0
        self.lists = 0
        self.chat_calls = 0
        self.unauthorized = 0
        self.headers_seen: list[str] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._http: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------- lifecycle
    def start(self) -> "FakeBatchServer":
        server = self

        class Handler(_Handler):
            fake = server

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True,
                                        name="fake-batch-server")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def __enter__(self) -> "FakeBatchServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._http is not None, "server not started"
        return f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    def release(self) -> None:
        """Let held batches finish (from their next status check)."""
        self.hold = False

    def input_lines(self) -> list[dict[str, Any]]:
        """Every request line of every uploaded batch file, in upload order."""
        out = []
        for record in self.files.values():
            if record["purpose"] == "batch":
                out.extend(json.loads(line) for line in record["data"].splitlines() if line.strip())
        return out

    # ------------------------------------------------------------ behaviour
    def _new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    def _file(self, data: bytes, name: str, purpose: str) -> dict[str, Any]:
        file_id = self._new_id("file")
        self.files[file_id] = {"data": data, "filename": name, "purpose": purpose,
                               "created_at": int(time.time())}
        return self._file_object(file_id)

    def _file_object(self, file_id: str) -> dict[str, Any]:
        record = self.files[file_id]
        return {"id": file_id, "object": "file", "bytes": len(record["data"]),
                "created_at": record["created_at"], "filename": record["filename"],
                "purpose": record["purpose"], "status": "processed"}

    def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        """The chat completion body answering ``body`` (shared by both endpoints)."""
        messages = body.get("messages") or []
        text = self.reply(messages)
        prompt_chars = sum(len(str(m.get("content", ""))) for m in messages)
        return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0,
                "model": body.get("model", "fake"),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": max(1, prompt_chars // 4),
                          "completion_tokens": max(1, len(text) // 4),
                          "total_tokens": max(1, prompt_chars // 4) + max(1, len(text) // 4)}}

    def _create_batch(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        file_id = body.get("input_file_id")
        if file_id not in self.files:
            return 400, _error(f"input file {file_id!r} not found")
        if body.get("endpoint") != "/v1/chat/completions" or body.get("completion_window") != "24h":
            return 400, _error("unsupported endpoint or completion window")
        self.creates += 1
        batch_id = self._new_id("batch")
        self.batches[batch_id] = {
            "id": batch_id, "object": "batch", "endpoint": body["endpoint"], "errors": None,
            "input_file_id": file_id, "completion_window": body["completion_window"],
            "status": "validating", "output_file_id": None, "error_file_id": None,
            "created_at": int(time.time()), "metadata": body.get("metadata") or {},
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "_started": time.monotonic(), "_expire": self.creates <= self.expire,
        }
        return 200, self._public(batch_id)

    def _public(self, batch_id: str) -> dict[str, Any]:
        return {k: v for k, v in self.batches[batch_id].items() if not k.startswith("_")}

    def _advance(self, batch_id: str) -> None:
        batch = self.batches[batch_id]
        if batch["status"] in ("completed", "expired", "failed", "cancelled"):
            return
        lines = [json.loads(line) for line in self.files[batch["input_file_id"]]["data"]
                 .splitlines() if line.strip()]
        batch["request_counts"]["total"] = len(lines)
        if self.hold or time.monotonic() - batch["_started"] < self.delay:
            batch["status"] = "in_progress"
            return
        models = {line.get("body", {}).get("model") for line in lines}
        bad = [line for line in lines if line.get("method") != "POST"
               or line.get("url") != "/v1/chat/completions"]
        if len(models) > 1 or bad or len({line.get("custom_id") for line in lines}) != len(lines):
            batch["status"] = "failed"
            batch["errors"] = {"object": "list", "data": [
                {"code": "invalid_file", "message": "one model per file, POST "
                 "/v1/chat/completions lines, unique custom_id"}]}
            return
        keep = int(len(lines) * self.expire_keep) if batch["_expire"] else len(lines)
        out, err = [], []
        for n, line in enumerate(lines):
            request_id = f"req-{batch_id}-{n}"
            base = {"id": f"batch_req_{n}", "custom_id": line["custom_id"]}
            if n >= keep:
                err.append({**base, "response": None, "error": {
                    "code": "batch_expired", "message": "This request could not be executed "
                    "before the completion window expired."}})
                continue
            body = line["body"]
            prompt = json.dumps(body.get("messages"), ensure_ascii=False)
            if self.fail_when and self.fail_when in prompt:
                err.append({**base, "error": None, "response": {
                    "status_code": 400, "request_id": request_id,
                    "body": _error("the fake server refuses this prompt")}})
                continue
            out.append({**base, "error": None, "response": {
                "status_code": 200, "request_id": request_id, "body": self.completion(body)}})
        encode = (lambda rows: "".join(json.dumps(r) + "\n" for r in rows).encode())
        if out:
            batch["output_file_id"] = self._file(encode(out) + b"".join(self.junk),
                                                 f"{batch_id}_output.jsonl",
                                                 "batch_output")["id"]
        if err:
            batch["error_file_id"] = self._file(encode(err), f"{batch_id}_error.jsonl",
                                                "batch_output")["id"]
        failed = sum(1 for e in err if e["response"] is not None)
        batch["request_counts"] = {"total": len(lines), "completed": len(out), "failed": failed}
        batch["status"] = "expired" if batch["_expire"] else "completed"

    # -------------------------------------------------------------- routing
    def handle(self, method: str, path: str, headers: Any, raw: bytes) -> tuple[int, Any]:
        """One request -> ``(status, JSON object or bytes)``."""
        if path.startswith("/_fake/"):
            return self._control(method, path)
        auth = headers.get("Authorization", "")
        self.headers_seen.append(auth)
        if self.api_key is not None and auth != f"Bearer {self.api_key}":
            self.unauthorized += 1
            return 401, _error("Incorrect API key provided")
        path = path.split("?", 1)[0].rstrip("/")
        parts = path.split("/")[1:]
        if parts[:1] != ["v1"]:
            return 404, _error("not found")
        parts = parts[1:]
        with self._lock:
            if method == "POST" and parts == ["chat", "completions"]:
                self.chat_calls += 1
                return 200, self.completion(json.loads(raw))
            if method == "GET" and parts == ["models"]:
                return 200, {"object": "list", "data": [{"id": "fake", "object": "model"}]}
            if method == "POST" and parts == ["files"]:
                fields = _multipart(headers.get("Content-Type", ""), raw)
                if fields.get("purpose", (b"",))[0] != b"batch" or "file" not in fields:
                    return 400, _error("expected a file with purpose=batch")
                self.uploads += 1
                data, name = fields["file"]
                return 200, self._file(data, name or "upload.jsonl", "batch")
            if parts[:1] == ["files"] and len(parts) >= 2 and parts[1] in self.files:
                if len(parts) == 3 and parts[2] == "content":
                    return 200, self.files[parts[1]]["data"]
                return 200, self._file_object(parts[1])
            if method == "POST" and parts == ["batches"]:
                return self._create_batch(json.loads(raw))
            if method == "GET" and parts == ["batches"]:
                self.lists += 1
                data = [self._public(b) for b in reversed(list(self.batches))]
                return 200, {"object": "list", "data": data, "has_more": False,
                             "first_id": data[0]["id"] if data else None,
                             "last_id": data[-1]["id"] if data else None}
            if parts[:1] == ["batches"] and len(parts) >= 2 and parts[1] in self.batches:
                if method == "POST" and parts[2:] == ["cancel"]:
                    self.batches[parts[1]]["status"] = "cancelled"
                    return 200, self._public(parts[1])
                self.retrieves += 1
                self._advance(parts[1])
                return 200, self._public(parts[1])
        return 404, _error(f"no route for {method} {path}")


    def stats(self) -> dict[str, Any]:
        """Counters and the request count of every uploaded batch file."""
        return {"uploads": self.uploads, "creates": self.creates, "retrieves": self.retrieves,
                "lists": self.lists, "chat_calls": self.chat_calls,
                "file_lines": [len(r["data"].splitlines()) for r in self.files.values()
                               if r["purpose"] == "batch"]}

    def _control(self, method: str, path: str) -> tuple[int, Any]:
        """``GET /_fake/stats``, ``POST /_fake/hold`` and ``POST /_fake/release``."""
        with self._lock:
            if method == "POST" and path == "/_fake/hold":
                self.hold = True
            elif method == "POST" and path == "/_fake/release":
                self.hold = False
            elif path != "/_fake/stats":
                return 404, _error("unknown control route")
            return 200, self.stats()


class _Handler(BaseHTTPRequestHandler):
    fake: FakeBatchServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, payload = self.fake.handle(self.command, self.path, self.headers, raw)
        if isinstance(payload, bytes):
            body, kind = payload, "application/octet-stream"
        else:
            body, kind = json.dumps(payload).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _serve


def _error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "code": None}}


def _multipart(content_type: str, raw: bytes) -> dict[str, tuple[bytes, str | None]]:
    """Form fields of a multipart body: name -> (bytes, filename)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        fields[str(name)] = (part.get_payload(decode=True) or b"", part.get_filename())
    return fields


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until killed, printing the base URL first (``python -m`` this module).

    ``--latency`` is accepted (and ignored) so the benchmarks' process wrapper can start it.
    """
    import argparse

    parser = argparse.ArgumentParser(description="loopback OpenAI Files/Batches server")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    with FakeBatchServer(delay=args.delay) as server:
        print(server.base_url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
