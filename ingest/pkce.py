"""PKCE (RFC 7636), S256 only, and the browser binding of an OAuth state: pure functions.

Two proofs use them. Towards WHOOP, the edge sends ``code_challenge = S256(verifier)`` in the consent
URL and the verifier in the token exchange, so a stolen authorization code is useless. Towards the
app, the app may send its own challenge to ``authorize`` and must then prove the verifier at
``callback`` (or ``exchange``): a code or state intercepted on its way to the app is useless too. The
browser flow binds the state to a random cookie instead; only its hash is stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

__all__ = [
    "CHALLENGE_METHOD",
    "binding_cookie_name",
    "challenge_of",
    "challenge_problem",
    "is_challenge",
    "is_verifier",
    "new_binding",
    "new_verifier",
    "verifies",
]

CHALLENGE_METHOD = "S256"
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")
_COOKIE_PREFIX = "wp_oauth_"


def new_verifier() -> str:
    """A fresh code verifier: 32 random bytes, base64url (43 characters)."""
    return secrets.token_urlsafe(32)


def challenge_of(verifier: str) -> str:
    """``BASE64URL(SHA256(ASCII(verifier)))`` without padding (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def is_verifier(value: str) -> bool:
    """43 to 128 unreserved characters (RFC 7636 §4.1)."""
    return _VERIFIER.fullmatch(value) is not None


def is_challenge(value: str) -> bool:
    """An S256 challenge: 43 base64url characters (a sha256 digest, unpadded)."""
    return _CHALLENGE.fullmatch(value) is not None


def challenge_problem(challenge: str | None, method: str | None, *, required: bool) -> str | None:
    """Why the app's ``code_challenge``/``code_challenge_method`` are refused (an error code), or None."""
    if challenge is None:
        if method is not None:
            return "invalid_request"
        return "code_challenge_required" if required else None
    if method != CHALLENGE_METHOD:  # plain, or no method (RFC 7636 then means plain)
        return "unsupported_code_challenge_method"
    return None if is_challenge(challenge) else "invalid_code_challenge"


def verifies(challenge: str | None, verifier: str | None) -> bool:
    """Whether ``verifier`` answers ``challenge``; no challenge accepts only no verifier (no downgrade)."""
    if challenge is None:
        return verifier is None
    if verifier is None or not is_verifier(verifier):
        return False
    return hmac.compare_digest(challenge_of(verifier), challenge)


def new_binding() -> str:
    """A fresh random value for the browser's binding cookie."""
    return secrets.token_urlsafe(32)


def binding_cookie_name(state: str) -> str:
    """The cookie binding ``state`` to its browser; one per state, so parallel tabs do not collide."""
    return _COOKIE_PREFIX + hashlib.sha256(state.encode("utf-8", "surrogateescape")).hexdigest()[:16]
