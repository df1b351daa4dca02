"""Per-trial tokens: the collector proves which trial it reports for.

The operator keeps one secret key (in a Secret) and gives each trial pod
``trial_token(key, trial.uid)``; the intake recomputes it from the UID a batch
claims and compares in constant time. A token therefore only ever speaks for
its own trial: a compromised trial pod cannot report for another trial, and no
per-trial state has to be stored. Rotating the key is a matter of accepting the
old and the new key for a while (:func:`verify_token_any`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

#: HTTP header carrying the token, as ``Bearer <token>``.
TOKEN_HEADER = "Authorization"
_SCHEME = "bearer"


def trial_token(key: bytes, trial_uid: str) -> str:
    """HMAC-SHA256 of the trial UID under ``key``, as lowercase hex."""
    if not key:
        raise ValueError("the token key must not be empty")
    return hmac.new(key, trial_uid.encode("utf-8"), hashlib.sha256).hexdigest()


def verify_token(key: bytes, trial_uid: str, token: str) -> bool:
    """Whether ``token`` is the token of ``trial_uid``, compared in constant time."""
    if not key or not trial_uid:
        return False
    expected = trial_token(key, trial_uid).encode("ascii")
    return hmac.compare_digest(expected, token.encode("utf-8", "replace"))


def verify_token_any(keys: Iterable[bytes], trial_uid: str, token: str) -> bool:
    """Whether ``token`` is valid under any of ``keys`` (key rotation)."""
    results = [verify_token(key, trial_uid, token) for key in keys]
    return any(results)


def authorization(token: str) -> str:
    """The ``Authorization`` header value carrying ``token``."""
    return f"Bearer {token}"


def token_from_authorization(value: str | None) -> str | None:
    """The token of a ``Bearer`` header value, or ``None`` if there is none."""
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == _SCHEME and token else None
