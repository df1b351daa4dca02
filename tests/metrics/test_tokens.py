"""Per-trial tokens: HMAC of the trial UID, checked in constant time."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from kubesweep.metrics import trial_token, verify_token, verify_token_any
from kubesweep.metrics.tokens import authorization, token_from_authorization

KEY = b"k" * 32


def test_token_is_hmac_sha256_hex_of_the_uid() -> None:
    expected = hmac.new(KEY, b"uid-1", hashlib.sha256).hexdigest()
    assert trial_token(KEY, "uid-1") == expected


def test_verify_accepts_only_the_trials_own_token() -> None:
    token = trial_token(KEY, "uid-1")
    assert verify_token(KEY, "uid-1", token)
    assert not verify_token(KEY, "uid-2", token)
    assert not verify_token(b"other", "uid-1", token)
    assert not verify_token(KEY, "uid-1", token[:-1])
    assert not verify_token(KEY, "uid-1", "é" * 64)
    assert not verify_token(KEY, "", token)
    assert not verify_token(b"", "uid-1", token)


def test_key_rotation() -> None:
    token = trial_token(b"old", "u")
    assert verify_token_any([b"new", b"old"], "u", token)
    assert not verify_token_any([b"new"], "u", token)


def test_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        trial_token(b"", "u")


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        (None, None),
    ],
)
def test_bearer_header(header: str | None, token: str | None) -> None:
    assert token_from_authorization(header) == token
    if token:
        assert token_from_authorization(authorization(token)) == token
