"""The one place that knows what a secret looks like: key names, key shapes, URL credentials.

Used by job-file validation (a generation parameter may not be named like a credential),
by every error line (:func:`mask`), and by report redaction (:func:`redact`), so the three
can never disagree again: a name refused as a parameter is exactly a name hidden in a report.
"""

from __future__ import annotations

import re
from typing import Any, Iterable
from urllib.parse import parse_qsl, urlsplit

__all__ = ["is_secret_name", "mask", "redact", "scrub", "url_credentials", "REDACTED",
           "REDACTED_KEY", "SECRET_SHAPE"]

REDACTED = "[redacted]"

REDACTED_KEY = "[redacted key]"
"""What :func:`scrub` puts where a key value stood in a model's answer."""

# Query parameters that carry a credential in URLs without naming it as one:
# signed URLs (sig, signature) and function keys (code).
_URL_SECRET_PARAMS = frozenset({"sig", "signature", "code", "x-amz-signature",
                                "x-goog-signature"})

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


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every exact occurrence of each secret replaced by :data:`REDACTED_KEY`.

    For model answers: unlike :func:`mask`, nothing else changes (no key-shape guessing,
    no line folding), so an answer that never contained a key is returned as it is.
    Secrets shorter than 8 characters are ignored (they would match ordinary words).
    """
    for secret in secrets:
        if secret and len(secret) >= 8 and secret in text:
            text = text.replace(secret, REDACTED_KEY)
    return text


def url_credentials(url: str) -> str | None:
    """Where a URL carries a credential, in words (never the value), or ``None``.

    A user name or password, a fragment (a base URL has no use for one; ``#token=...``),
    a query parameter named like a credential (``key``, ``api_key``, ``token``, ``sig``,
    ``code`` ...) or whose value has a key's shape (``sk-...``).

    >>> [url_credentials(u) for u in ("http://h/v1?api-version=2024-02-01",
    ...     "http://h/v1?key=abc", "http://h/v1#token=abc", "http://u:p@h/v1")]
    [None, "query parameter 'key'", 'fragment', 'user name or password']
    """
    try:
        parts = urlsplit(url)
        has_userinfo = bool(parts.username or parts.password)
    except ValueError:
        return "unparseable URL"
    if has_userinfo or "@" in parts.netloc:
        return "user name or password"
    if parts.fragment or url.rstrip().endswith("#"):
        return "fragment"
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if (is_secret_name(name) or name.lower() in _URL_SECRET_PARAMS
                or SECRET_SHAPE.search(value) or _KEYLIKE.search(value)):
            return f"query parameter {name!r}"
        if SECRET_SHAPE.search(name) or _KEYLIKE.search(name):
            return "query string"
    if SECRET_SHAPE.search(parts.query) or _KEYLIKE.search(parts.query):
        return "query string"
    return None
