"""Who may ask for suggestions: the operator, proven by a Kubernetes ServiceAccount token.

A suggestion request costs CPU and memory on purpose, so only the operator may
make one. The operator sends a projected ServiceAccount token bound to an
audience of its own (``kubesweep-suggestion``); the service asks the API
server whether that token is valid for that audience (a ``TokenReview``) and
whether it belongs to one of the allowed ServiceAccounts. Nothing is shared
beforehand, nothing is stored but a short cache of answers, and a token stolen
for another audience (say, the API server's) is refused here.

Answers are cached for ``ttl`` seconds by a hash of the token, at most
``max_entries`` of them, so a busy operator costs one review a minute, and a
flood of made-up tokens costs one review each but no memory beyond the bound.
An API server that cannot be asked is a temporary failure (503), never a pass.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

#: The audience the operator's projected token is issued for.
DEFAULT_AUDIENCE = "kubesweep-suggestion"
#: How long an answer of the API server is trusted.
DEFAULT_TTL = 60.0
MAX_ENTRIES = 1024


@dataclass(frozen=True)
class Review:
    """What the API server said of a token."""

    authenticated: bool
    username: str = ""
    error: str = ""


#: ``review(token, audience)``: ask the API server; raises ``OSError`` when it cannot.
Reviewer = Callable[[str, str], Awaitable[Review]]


class RefusedError(Exception):
    """The caller may not ask: ``status`` is 401 (no token) or 403 (not an allowed caller)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ReviewUnavailableError(Exception):
    """The API server could not be asked; the caller may try again."""


def service_account_name(namespace: str, name: str) -> str:
    """The username Kubernetes gives a ServiceAccount's tokens."""
    return f"system:serviceaccount:{namespace}:{name}"


def parse_allowed(entries: Iterable[str]) -> frozenset[str]:
    """``namespace/name`` entries (or full usernames) as ServiceAccount usernames."""
    allowed = set()
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        if entry.startswith("system:"):
            allowed.add(entry)
            continue
        namespace, sep, name = entry.partition("/")
        if not sep or not namespace or not name:
            raise ValueError(f"{entry!r}: expected NAMESPACE/SERVICEACCOUNT")
        allowed.add(service_account_name(namespace, name))
    return frozenset(allowed)


class Authenticator:
    """Checks a request's bearer token, with a bounded cache of the API server's answers."""

    def __init__(
        self,
        review: Reviewer,
        allowed: frozenset[str],
        *,
        audience: str = DEFAULT_AUDIENCE,
        ttl: float = DEFAULT_TTL,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.review = review
        self.allowed = allowed
        self.audience = audience
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._answers: OrderedDict[str, tuple[float, Review]] = OrderedDict()
        self._lock = asyncio.Lock()

    async def check(self, authorization: str | None) -> str:
        """The caller's username; else :class:`RefusedError` or :class:`ReviewUnavailableError`."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise RefusedError(401, "a bearer token is required (the operator's projected token)")
        review = await self._reviewed(token)
        if not review.authenticated:
            raise RefusedError(403, f"the token is not valid for audience {self.audience!r}")
        if review.username not in self.allowed:
            raise RefusedError(403, f"{review.username} may not ask for suggestions")
        return review.username

    async def _reviewed(self, token: str) -> Review:
        key = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
        now = self.clock()
        cached = self._answers.get(key)
        if cached is not None and cached[0] > now:
            self._answers.move_to_end(key)
            return cached[1]
        try:
            review = await self.review(token, self.audience)
        except OSError as error:
            raise ReviewUnavailableError(
                f"cannot review the token with the API server: {error}"
            ) from None
        async with self._lock:
            self._answers[key] = (now + self.ttl, review)
            self._answers.move_to_end(key)
            while len(self._answers) > self.max_entries:
                self._answers.popitem(last=False)
        return review


def token_review_body(token: str, audience: str) -> dict[str, object]:
    """The ``TokenReview`` the API server answers."""
    return {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token, "audiences": [audience]},
    }


def review_from(answer: dict[str, object], audience: str) -> Review:
    """A :class:`Review` from the API server's answer: valid only for ``audience``."""
    status = answer.get("status")
    if not isinstance(status, dict):
        return Review(False, error="no status in the TokenReview answer")
    user = status.get("user") if isinstance(status.get("user"), dict) else {}
    audiences = status.get("audiences")
    valid = (
        status.get("authenticated") is True
        and isinstance(audiences, list)
        and audience in audiences
    )
    username = str(user.get("username", "")) if isinstance(user, dict) else ""
    return Review(valid, username, str(status.get("error") or ""))


def kubernetes_reviewer(kubeconfig: str | None = None) -> Reviewer:
    """A reviewer that asks the API server, with in-cluster credentials or a kubeconfig.

    A new client per review reads the service's own (rotated) token afresh; the
    cache keeps reviews rare.
    """
    from kubesweep.cli.kube import Kube, KubeError

    def ask(token: str, audience: str) -> Review:
        try:
            answer = Kube.connect(kubeconfig).request(
                "POST",
                "/apis/authentication.k8s.io/v1/tokenreviews",
                token_review_body(token, audience),
            )
        except KubeError as error:
            raise OSError(str(error)) from None
        return review_from(answer, audience)

    async def review(token: str, audience: str) -> Review:
        return await asyncio.get_running_loop().run_in_executor(None, ask, token, audience)

    return review
