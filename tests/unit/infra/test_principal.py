"""The one bearer parser and principal of both HTTP stages (``infra.principal``) and their scope rules."""

from __future__ import annotations

import hashlib

import pytest

from infra.admin_tokens import AdminToken
from infra.principal import Principal, Refusal, admin_principal, bearer_token
from infra.vault import ApiPrincipal
from ingest.auth import AccessDenied, authorize_for_user
from projections.errors import Forbidden
from projections.query.auth import authorize

pytestmark = pytest.mark.unit


def test_the_bearer_token_is_parsed_strictly() -> None:
    assert bearer_token(["Bearer abc"]) == "abc"
    assert bearer_token(["bearer  abc "]) == "abc"
    assert bearer_token(["Bearer " + "a" * 256]) == "a" * 256
    for values in ([], ["Bearer"], ["Basic abc"], ["Bearer abc", "Bearer abc"], ["Bearer " + "a" * 257]):
        assert bearer_token(values) is None
    assert bearer_token(["Bearer é"]) is None


def test_admin_tokens_match_by_hash_and_users_come_from_their_token() -> None:
    digest = hashlib.sha256(b"secret").hexdigest()
    ops = AdminToken(digest, "ops", frozenset({"read"}))
    assert admin_principal((ops,), digest) == Principal("admin", "ops", scopes=frozenset({"read"}))
    assert admin_principal((ops,), hashlib.sha256(b"other").hexdigest()) is None
    user = Principal.of_user(ApiPrincipal("t1", "u1", ("user",)))
    assert user == Principal("user", "t1", user_id="u1", scopes=frozenset({"user"}))
    assert (user.key, admin_principal((ops,), digest).key) == ("token:t1", "admin:ops")  # type: ignore[union-attr]


def test_a_refusal_is_decided_once_for_every_stage() -> None:
    user = Principal("user", "t1", user_id="u1")
    assert user.refusal("u1", ("read",)) is None
    assert user.refusal("u2", ("read",)) is Refusal.NOT_FOUND
    admin = Principal("admin", "ops", scopes=frozenset({"read"}))
    assert admin.refusal("anyone", ("status", "read")) is None
    assert admin.refusal("anyone", ("status",)) is Refusal.MISSING_SCOPE


def test_ingest_asks_for_the_exact_scope_and_the_query_api_lets_read_cover_status() -> None:
    reader = Principal("admin", "ops", scopes=frozenset({"read"}))
    authorize(reader, "anyone", "status")
    with pytest.raises(AccessDenied) as denied:
        authorize_for_user(reader, "anyone", "status")
    assert (denied.value.status, denied.value.code) == (403, "insufficient_scope")
    with pytest.raises(Forbidden):
        authorize(Principal("admin", "support", scopes=frozenset({"status"})), "anyone", "read")
    with pytest.raises(AccessDenied) as denied:
        authorize_for_user(Principal("user", "t1", user_id="u1"), "u2", "read")
    assert (denied.value.status, denied.value.code) == (404, "not_found")
