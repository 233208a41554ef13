"""The one place that knows what a secret looks like: key names, key shapes, URL credentials.

Used by job-file validation (a generation parameter may not be named like a credential),
by every error line (:func:`mask`), and by report redaction (:func:`redact`), so the three
can never disagree again: a name refused as a parameter is exactly a name hidden in a report.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

__all__ = ["is_secret_name", "mask", "redact", "REDACTED", "SECRET_SHAPE"]

REDACTED = "[redacted]"

SECRET_SHAPE = re.compile(
    r"(sk-[A-Za-z0-9_\-]{16,}|sk_(?:live|test)_[A-Za-z0-9]{16,}|hf_[A-Za-z0-9]{20,}|"
    r"gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|AKIA[0-9A-Z]{16}|"
    r"xox[abprs]-[A-Za-z0-9\-]{10,}|AIza[0-9A-Za-z_\-]{30,}|(?i:bearer)\s+[A-Za-z0-9._~+/=\-]{8,})")
"""Shapes of credentials that must never be printed, whatever key they sit under."""

# A short key-like token that servers quote back (``sk-ab...yz``): masked in error lines.
_KEYLIKE = re.compile(r"\b(sk|rk|pk)-[A-Za-z0-9_\-*.]{6,}")
_URL_USERINFO = re.compile(r"(?<=://)[^/@\s:]+:[^/@\s]+@")
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_WS = re.compile(r"\s+")

_SECRET_WORDS = frozenset({"apikey", "secret", "secrets", "password", "passwd", "pwd", "token",
                           "auth", "authorization", "bearer", "credential", "credentials",
                           "cookie", "passphrase"})
_SECRET_PAIRS = frozenset({("api", "key"), ("private", "key"), ("secret", "key"),
                           ("access", "key"), ("signing", "key"), ("client", "key")})


def is_secret_name(name: str) -> bool:
    """Whether a (dotted) key name names a credential.

    Each part of the path is split into words at ``_``, ``-`` and camelCase, and a part is
    a secret when a word is a credential word (``token``, ``secret``, ``auth`` ...) or two
    neighbouring words are (``api key``, ``private key``). ``*_env`` and ``*_var`` name an
    environment *variable*, not a value, and are allowed.

    >>> [is_secret_name(n) for n in ("api_key", "clientSecret", "authToken", "privateKey",
    ...                                "secrets.openai", "max_tokens", "tokens_in", "api_key_env")]
    [True, True, True, True, True, False, False, False]
    >>> [is_secret_name(n) for n in ("key", "x-api-key", "cache_key", "keyboard")]
    [True, True, False, False]
    """
    parts = name.split(".")
    if parts and parts[-1].lower().endswith(("_env", "_var")):
        parts = parts[:-1]
    for part in parts:
        words = [w.lower() for w in _WORD.findall(part)]
        if words == ["key"]:  # a bare "key" holds one
            return True
        if _SECRET_WORDS.intersection(words) or _SECRET_PAIRS.intersection(zip(words, words[1:])):
            return True
    return False


def mask(text: object, *, limit: int = 300, secrets: Iterable[str | None] = ()) -> str:
    """One bounded line with secrets masked: exact ``secrets``, key shapes, URL credentials.

    >>> mask("401: bad key sk-abcdef123456 for http://u:p@h/v1\\n  retry")
    '401: bad key sk-*** for http://[redacted]@h/v1 retry'
    """
    out = str(text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            out = out.replace(secret, "***")
    out = _KEYLIKE.sub(r"\1-***", out)
    out = SECRET_SHAPE.sub(REDACTED, out)
    out = _URL_USERINFO.sub(REDACTED + "@", out)
    out = _WS.sub(" ", out).strip()
    if len(out) > limit:
        out = out[: limit - 1] + "\u2026"
    return out


def redact(value: Any, key: str = "") -> Any:
    """A value safe to write into a report: hidden when its key names a credential or it has
    a credential's shape; credentials in URLs removed. Non-strings are returned as they are.
    """
    if isinstance(value, str):
        if key and is_secret_name(key):
            return REDACTED
        return _URL_USERINFO.sub(REDACTED + "@", SECRET_SHAPE.sub(REDACTED, value))
    return value
