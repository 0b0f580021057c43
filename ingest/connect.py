"""Connecting and disconnecting a WHOOP account: the use cases behind the OAuth routes.

* :func:`start` stores a fresh random state (32 bytes, hashed at rest, single-use, expiring, bound
  to the WHOOP client, the redirect URI, the hash of a browser binding cookie and the app's optional
  PKCE challenge) with our PKCE verifier, and returns WHOOP's consent URL carrying its S256 challenge.
* :func:`consume` spends the state; :func:`check_browser` and :func:`check_app_verifier` then prove
  that the caller is the browser or the app that started the flow.
* :func:`complete` exchanges the code (with our verifier), reads the member id from the profile,
  stores the token pair encrypted, records a backfill job and appends ``UserConnected`` +
  ``BackfillRequested`` to ``whoop.connections.v1``. The same member always maps to the same
  ``user_id`` (``schemas.identity``).
* :func:`disconnect` revokes the grant at WHOOP (refreshing once, single-flight, when the access
  token has expired), appends ``UserDisconnected``, then deletes the tokens and revokes our API tokens.
  A retry after a partial failure converges: a grant WHOOP no longer knows counts as revoked.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypedDict, cast
from urllib.parse import urlsplit

from infra.vault import TokenPair, hash_token
from ingest import pkce
from ingest.errors import StateRejected, WhoopRejected
from ingest.services import Services
from ingest.store import Connection, OAuthState, PullJob
from schemas.events import BackfillRequested, Envelope, UserConnected, UserDisconnected, new_event_id
from schemas.keys import record_key
from schemas.records import ResourceType
from schemas.serde import encode

__all__ = [
    "ALL_RESOURCE_TYPES",
    "Completed",
    "Started",
    "check_app_verifier",
    "check_browser",
    "check_sdk_flow",
    "complete",
    "consume",
    "disconnect",
    "publish_backfill",
    "revoke_grant",
    "start",
]

logger = logging.getLogger(__name__)

ALL_RESOURCE_TYPES: tuple[ResourceType, ...] = ("cycle", "sleep", "recovery", "workout")


@dataclass(frozen=True)
class Started:
    """The consent URL, the state that goes with it, and the value of the browser's binding cookie."""

    authorization_url: str
    state: str
    expires_in: int
    binding: str = field(repr=False)


@dataclass(frozen=True)
class Completed:
    """A connection made: who, whether they were known, and where the browser flow returns."""

    connection: Connection
    backfill_job_id: str
    bound: OAuthState


async def start(
    services: Services,
    redirect_uri: str,
    return_to: str | None = None,
    client_state: str | None = None,
    app_code_challenge: str | None = None,
) -> Started:
    """Create and store a state; the caller validated ``redirect_uri``, ``return_to`` and the challenge."""
    settings = services.settings
    state, verifier, binding = secrets.token_urlsafe(32), pkce.new_verifier(), pkce.new_binding()
    bound = OAuthState(
        settings.whoop.whoop_client_id,
        redirect_uri,
        return_to,
        client_state,
        code_verifier=verifier,
        binding_hash=hash_token(binding),
        app_code_challenge=app_code_challenge,
    )
    await services.require_store().create_state(state, bound, settings.ingest.oauth_state_ttl_s)
    url = services.require_whoop().authorization_url(redirect_uri, state, pkce.challenge_of(verifier))
    return Started(url, state, settings.ingest.oauth_state_ttl_s, binding)


async def consume(services: Services, state: str, redirect_uri: str | None) -> OAuthState:
    """Consume the state (single use); check it was issued for this client and redirect URI."""
    if not 16 <= len(state) <= 128:
        raise StateRejected("state_unknown", "the OAuth state is unknown")
    bound = await services.require_store().consume_state(state)
    if bound.client_id != services.settings.whoop.whoop_client_id:
        raise StateRejected("state_unknown", "the OAuth state was issued for another client")
    if redirect_uri is not None and bound.redirect_uri != redirect_uri:
        raise StateRejected("redirect_uri_mismatch", "redirect_uri differs from the authorize request")
    return bound


def check_browser(bound: OAuthState, binding: str | None) -> None:
    """The browser bringing the state back must hold the cookie ``authorize`` set (login CSRF)."""
    if (
        bound.binding_hash is None
        or binding is None
        or not hmac.compare_digest(bound.binding_hash, hash_token(binding))
    ):
        raise StateRejected("state_not_bound", "the OAuth state was started in another browser")


_EDGE_CALLBACKS = ("/v1/oauth/callback", "/v1/whoop-cloud/oauth/callback")


def check_sdk_flow(bound: OAuthState) -> None:
    """A state whose WHOOP redirect lands on the edge's own callback belongs to the browser flow:
    only that callback, with the browser's binding cookie, may complete it (not the JSON route)."""
    parts = urlsplit(bound.redirect_uri)
    if parts.scheme in ("http", "https") and parts.path in _EDGE_CALLBACKS:
        raise StateRejected("browser_flow_state", "this OAuth state belongs to the browser flow")


def check_app_verifier(bound: OAuthState, code_verifier: str | None) -> None:
    """The app must prove the verifier of the challenge it sent to ``authorize`` (and send none without)."""
    if not pkce.verifies(bound.app_code_challenge, code_verifier):
        raise StateRejected("invalid_code_verifier", "code_verifier does not match the code_challenge")


async def complete(services: Services, bound: OAuthState, code: str) -> Completed:
    """Exchange ``code`` (the state was consumed by :func:`consume`) and record the connection."""
    whoop, store, settings = services.require_whoop(), services.require_store(), services.settings.ingest
    grant = await whoop.exchange_code(code, bound.redirect_uri, bound.code_verifier)
    member_id = await whoop.fetch_member_id(grant.access_token)
    now = datetime.now(UTC)
    job = PullJob(
        job_id=str(uuid.uuid4()),
        user_id="",
        resource_types=ALL_RESOURCE_TYPES,
        start=now - timedelta(days=settings.backfill_days),
        end=now,
        requested_by="connect",
    )
    connection = await store.save_connection(member_id, grant.pair(now), job)
    user_id = connection.user_id
    connected = UserConnected(
        **_envelope(user_id, now),
        whoop_user_id=member_id,
        scopes=grant.scopes,
        reconnected=connection.reconnected,
    )
    await _announce(services, connected)
    await publish_backfill(services, user_id, job, causation_id=connected.event_id)
    services.metrics.oauth_outcomes.labels("reconnected" if connection.reconnected else "connected").inc()
    logger.info("user %s connected (reconnect=%s)", user_id, connection.reconnected)
    return Completed(connection, job.job_id, bound)


class _Envelope(TypedDict):
    event_id: str
    occurred_at: datetime
    user_id: str
    source: str


def _envelope(user_id: str, at: datetime | None = None) -> _Envelope:
    """The envelope of a connection event ingest writes about ``user_id`` (``at``: now by default)."""
    return _Envelope(
        event_id=new_event_id(), occurred_at=at or datetime.now(UTC), user_id=user_id, source="ingest"
    )


async def _announce(services: Services, event: Envelope) -> None:
    """Append a connection lifecycle event to the connections topic, keyed by its member (raises
    AppendUnavailable)."""
    key = record_key(event.user_id, "connection", event.user_id)
    await services.require_publisher().append(services.settings.ingest.connections_topic, key, encode(event))


async def publish_backfill(
    services: Services, user_id: str, job: PullJob, causation_id: str | None = None
) -> None:
    """Append the ``BackfillRequested`` of ``job`` (raises AppendUnavailable)."""
    event = BackfillRequested(
        **_envelope(user_id),
        causation_id=causation_id,
        resource_types=cast(tuple[ResourceType, ...], job.resource_types),  # encode checks each
        start=job.start,
        end=job.end,
        job_id=job.job_id,
    )
    await _announce(services, event)


async def disconnect(services: Services, user_id: str, whoop_user_id: int) -> int:
    """Revoke at WHOOP, announce, delete tokens, revoke API tokens; returns API tokens revoked."""
    store = services.require_store()
    await revoke_grant(services, user_id)
    event = UserDisconnected(
        **_envelope(user_id),
        whoop_user_id=whoop_user_id,
    )
    await _announce(services, event)
    revoked = await store.disconnect(user_id)
    services.metrics.oauth_outcomes.labels("disconnected").inc()
    logger.info("user %s disconnected; %d API tokens revoked", user_id, revoked)
    return revoked


async def revoke_grant(services: Services, user_id: str) -> bool:
    """Revoke the member's grant at WHOOP (refreshing once when the access token expired).

    True when there was a grant to revoke; a grant WHOOP no longer knows counts as revoked. Raises
    WhoopUnavailable / WhoopRejected when WHOOP cannot be told.
    """
    store, whoop = services.require_store(), services.require_whoop()
    pair = await store.load_tokens(user_id)
    if pair is None:
        return False
    try:
        await whoop.revoke_access(pair.access_token)
    except WhoopRejected as exc:
        if exc.status != 401:
            raise
        await _revoke_after_refresh(services, user_id, pair)
    return True


async def _revoke_after_refresh(services: Services, user_id: str, stale: TokenPair) -> None:
    """The access token was refused: refresh once (single-flight) and revoke with the new one.

    When WHOOP refuses the refresh token too, the grant is already gone: nothing left to revoke.
    """
    whoop = services.require_whoop()
    if stale.refresh_token is None:
        return

    async def refresher(current: TokenPair) -> TokenPair:
        if current.refresh_token is None:
            raise WhoopRejected("no_refresh_token", "no refresh token stored", 400)
        grant = await whoop.refresh(current.refresh_token)
        return grant.pair(datetime.now(UTC))

    try:
        fresh = await services.require_store().refresh_tokens(user_id, stale, refresher)
    except WhoopRejected as exc:
        if exc.code == "invalid_grant":
            logger.info("user %s: WHOOP no longer knows the grant; treated as revoked", user_id)
            return
        raise
    try:
        await whoop.revoke_access(fresh.access_token)
    except WhoopRejected as exc:
        if exc.status != 401:
            raise
        logger.info("user %s: WHOOP refused the refreshed token too; treated as revoked", user_id)
