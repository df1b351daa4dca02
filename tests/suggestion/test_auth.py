"""Only allowed ServiceAccounts' tokens for the service's audience may ask for suggestions."""

from __future__ import annotations

import pytest

from kubesweep.suggestion.auth import (
    Authenticator,
    RefusedError,
    Review,
    ReviewUnavailableError,
    parse_allowed,
    review_from,
)

OPERATOR = "system:serviceaccount:kubesweep:kubesweep-operator"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(answers: dict[str, Review], calls: list[str], clock: Clock, **kw) -> Authenticator:
    async def review(token: str, audience: str) -> Review:
        calls.append(token)
        if token == "unreachable":
            raise OSError("connection refused")
        return answers.get(token, Review(False, error="invalid"))

    return Authenticator(review, frozenset({OPERATOR}), clock=clock, **kw)


async def test_the_operators_token_passes_and_its_review_is_cached():
    calls: list[str] = []
    clock = Clock()
    auth = make({"good": Review(True, OPERATOR)}, calls, clock)
    assert await auth.check("Bearer good") == OPERATOR
    assert await auth.check("bearer good") == OPERATOR
    assert calls == ["good"]
    clock.now += 61
    assert await auth.check("Bearer good") == OPERATOR
    assert calls == ["good", "good"]


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (None, 401),
        ("", 401),
        ("Basic abc", 401),
        ("Bearer ", 401),
        ("Bearer forged", 403),
        ("Bearer someone-else", 403),
    ],
)
async def test_anyone_else_is_refused(header, status):
    auth = make({"someone-else": Review(True, "system:serviceaccount:team-a:default")}, [], Clock())
    with pytest.raises(RefusedError) as refused:
        await auth.check(header)
    assert refused.value.status == status


async def test_an_unreachable_api_server_is_temporary_and_never_a_pass():
    auth = make({}, [], Clock())
    with pytest.raises(ReviewUnavailableError):
        await auth.check("Bearer unreachable")


async def test_the_cache_is_bounded():
    calls: list[str] = []
    auth = make({}, calls, Clock(), max_entries=8)
    for i in range(100):
        with pytest.raises(RefusedError):
            await auth.check(f"Bearer made-up-{i}")
    assert len(auth._answers) == 8


def test_a_token_for_another_audience_is_not_valid():
    answer = {
        "status": {
            "authenticated": True,
            "user": {"username": OPERATOR},
            "audiences": ["https://kubernetes.default.svc"],
        }
    }
    assert not review_from(answer, "kubesweep-suggestion").authenticated
    answer["status"]["audiences"] = ["kubesweep-suggestion"]
    assert review_from(answer, "kubesweep-suggestion") == Review(True, OPERATOR, "")
    assert not review_from({}, "kubesweep-suggestion").authenticated


def test_allowed_callers_are_namespace_slash_name():
    assert parse_allowed(["kubesweep/op", " system:serviceaccount:x:y ", ""]) == {
        "system:serviceaccount:kubesweep:op",
        "system:serviceaccount:x:y",
    }
    with pytest.raises(ValueError, match="NAMESPACE/SERVICEACCOUNT"):
        parse_allowed(["just-a-name"])
