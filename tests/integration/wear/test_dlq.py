"""``wear dlq`` on the real engines: letters made by the real normalizer, redriven by the command.

The deliberately broken stage is the normalizer started without the member keys (a misconfiguration
that happened to peers): it dead-letters every sealed document (``SealError``). The fix is the
configuration: ``wear dlq redrive`` runs the normalizer's own ``normalize_message`` with the keys, and
the records land on the records topic once, however often the redrive is repeated. A document that
the normalizer rejects for its content is still broken after the "fix": its redrive puts it back in
the DLQ once, as a new letter naming the old one, and the old one is never redriven again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from infra.member_keys import MemberKeys
from infra.sealing import is_sealed, open_value, seal_value
from infra.settings import KafkaSettings
from infra.vault import VaultSettings
from processors.normalize import normalize_document
from schemas.serde import encode
from tests.integration.wear.dlq_harness import (
    Topics,
    a_cycle,
    each_topics,
    ends,
    key_of,
    normalize_until,
    produce,
    records,
    wear,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def names(kafka_settings: KafkaSettings, unique: Callable[[str], str]) -> AsyncIterator[Topics]:
    async for made in each_topics(kafka_settings, unique("dlq")):
        yield made


@pytest.fixture
def env(kafka_settings: KafkaSettings, database_url: str, pg_schema: str, names: Topics) -> dict[str, str]:
    """The command's environment: this test's Kafka, schema and records topic."""
    sep = "&" if "?" in database_url else "?"
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.kafka_bootstrap_servers,
        "DATABASE_URL": f"{database_url}{sep}search_path={pg_schema}",
        "PROCESSORS_RECORDS_TOPIC": names.records,
        "PROJECTIONS_RECORDS_TOPIC": names.records,
    }


async def test_a_sealed_document_dead_lettered_by_a_keyless_normalizer_lands_once_after_the_fix(
    kafka_settings: KafkaSettings,
    db_pool: asyncpg.Pool,
    names: Topics,
    env: dict[str, str],
    unique: Callable[[str], str],
) -> None:
    doc = a_cycle()
    key = await MemberKeys(VaultSettings().keyring()).ensure(db_pool, doc.user_id)
    await produce(kafka_settings, names.documents, [(key_of(doc), seal_value(key, doc.user_id, encode(doc)))])
    counts = await normalize_until(kafka_settings, names, unique("normalizer"), letters=1)
    assert counts.records == 0
    assert await ends(kafka_settings, names.records) == 0

    listed = await wear(env, "dlq", "list", names.dlq, "--json")
    assert listed.code == 0, listed.stderr
    (letter,) = listed.json()["letters"]
    assert letter["stage"] == "normalizer"
    assert letter["error_type"] == "SealError"
    assert letter["user_id"] == doc.user_id
    assert letter["redriven"] is None

    shown = await wear(env, "dlq", "show", names.dlq, "--id", letter["id"], "--json")
    assert shown.code == 0, shown.stderr
    (opened,) = shown.json()["letters"]
    assert opened["value"]["resource_id"] == doc.resource_id  # opened with the member's key, decoded
    assert opened["reason"] == "a sealed document, but the normalizer was started without keys"

    dry = await wear(env, "dlq", "redrive", names.dlq, "--id", letter["id"], "--dry-run", "--json")
    assert dry.code == 0, dry.stderr
    assert [r["outcome"] for r in dry.json()["letters"]] == ["would_land"]
    assert await ends(kafka_settings, names.records) == 0  # a dry run writes nothing

    expected = normalize_document(doc)
    redriven = await wear(env, "dlq", "redrive", names.dlq, "--id", letter["id"], "--json")
    assert redriven.code == 0, redriven.stderr
    (result,) = redriven.json()["letters"]
    assert (result["outcome"], result["landed"], result["succeeded"]) == ("landed", len(expected), True)
    landed = await records(kafka_settings, names.records)
    assert len(landed) == len(expected) >= 1
    for record in landed:  # sealed with the member's key, as the live normalizer writes them
        assert is_sealed(record.value)
        assert open_value(key, doc.user_id, record.value) == encode(expected[0])
    assert await ends(kafka_settings, names.dlq) == 1

    again = await wear(env, "dlq", "redrive", names.dlq, "--all", "--json")
    assert again.code == 0, again.stderr
    assert [r["outcome"] for r in again.json()["letters"]] == ["already_redriven"]
    assert await ends(kafka_settings, names.records) == len(expected)  # not landed twice
    listed = await wear(env, "dlq", "list", names.dlq, "--json")
    assert listed.json()["letters"][0]["redriven"] == "landed"


async def test_a_still_broken_document_goes_back_to_the_dlq_once_and_never_loops(
    kafka_settings: KafkaSettings,
    db_pool: asyncpg.Pool,
    names: Topics,
    env: dict[str, str],
    unique: Callable[[str], str],
) -> None:
    broken = a_cycle(1)
    broken = type(broken)(
        **{**{f: getattr(broken, f) for f in broken.__struct_fields__}, "document": {"id": 1}}
    )
    await produce(kafka_settings, names.documents, [(key_of(broken), encode(broken))])
    await normalize_until(kafka_settings, names, unique("normalizer"), letters=1)
    (first,) = (await wear(env, "dlq", "list", names.dlq, "--json")).json()["letters"]
    assert first["stage"] == "normalizer"

    ran = await wear(env, "dlq", "redrive", names.dlq, "--all", "--json")
    assert ran.code == 0, ran.stderr
    (result,) = ran.json()["letters"]
    assert result["outcome"] == "dead_lettered"
    assert result["succeeded"] is False
    assert await ends(kafka_settings, names.dlq) == 2  # back once
    assert await ends(kafka_settings, names.records) == 0

    letters = {
        item["id"]: item for item in (await wear(env, "dlq", "list", names.dlq, "--json")).json()["letters"]
    }
    copy = letters[result["requeued_as"]]
    assert copy["redrive_of"] == first["id"]
    assert copy["reason"].startswith(f"redrive of {first['id']}: ")
    assert copy["origin"] == first["origin"]  # the same document, the same origin offset
    assert letters[first["id"]]["redriven"] == f"back as {copy['id']}"

    # a second run: the original is not redriven again; the copy is tried once; the run does not
    # pick up the letter it adds itself
    ran = await wear(env, "dlq", "redrive", names.dlq, "--all", "--json")
    outcomes = {r["id"]: r["outcome"] for r in ran.json()["letters"]}
    assert outcomes == {first["id"]: "already_redriven", copy["id"]: "dead_lettered"}
    assert await ends(kafka_settings, names.dlq) == 3


async def test_list_counts_every_pipeline_dlq(
    kafka_settings: KafkaSettings, names: Topics, env: dict[str, str], unique: Callable[[str], str]
) -> None:
    doc = a_cycle(2)
    await produce(kafka_settings, names.documents, [(key_of(doc), b"not json")])
    await normalize_until(kafka_settings, names, unique("normalizer"), letters=1)
    listed = await wear({**env, "FETCHER_DOCUMENTS_TOPIC": names.documents}, "dlq", "list", "--json")
    assert listed.code == 0, listed.stderr
    found = {item["topic"]: item["count"] for item in listed.json()["topics"]}
    assert found[names.dlq] == 1
    human = await wear({**env, "FETCHER_DOCUMENTS_TOPIC": names.documents}, "dlq", "list")
    assert names.dlq in human.stdout
    shown = await wear(env, "dlq", "show", names.documents)  # the source topic names its twin
    assert shown.code == 0, shown.stderr
    assert "SchemaError" in shown.stdout
    assert "not JSON" in shown.stdout


async def test_refusals_exit_2_with_one_line(
    kafka_settings: KafkaSettings, names: Topics, env: dict[str, str], unique: Callable[[str], str]
) -> None:
    empty = await wear(env, "dlq", "list", names.dlq)
    assert (empty.code, empty.stderr.strip()) == (
        2,
        f"error: the DLQ {names.dlq} is empty: nothing to show or redrive",
    )
    empty = await wear(env, "dlq", "redrive", names.dlq, "--all")
    assert empty.code == 2 and "is empty" in empty.stderr

    unknown = await wear(env, "dlq", "show", "no.such.topic.dlq")
    assert unknown.code == 2
    assert unknown.stderr.strip().startswith("error: unknown DLQ topic no.such.topic.dlq")
    assert unknown.stderr.count("\n") == 1

    doc = a_cycle(3)
    await produce(kafka_settings, names.documents, [(key_of(doc), b"{}")])
    await normalize_until(kafka_settings, names, unique("normalizer"), letters=1)
    for bad in ("x", "0:", "-1:2"):
        ran = await wear(env, "dlq", "show", names.dlq, "--id", bad)
        assert ran.code == 2 and ran.stderr.startswith("error: bad id"), ran
    ran = await wear(env, "dlq", "redrive", names.dlq, "--id", "0:999")
    assert ran.code == 2 and ran.stderr.startswith("error: unknown id 0:999"), ran
    ran = await wear(env, "dlq", "show", names.dlq, "--id", "0:99")
    assert ran.code == 2, ran
    assert ran.stderr == f"error: unknown id 0:99 in {names.dlq}: see wear dlq list {names.dlq}\n", ran
    ran = await wear(env, "dlq", "redrive", names.dlq, "--id", "0:0", "--all")
    assert ran.code == 2
    ran = await wear(env, "dlq", "redrive", names.dlq)
    assert ran.code == 2


async def test_kafka_or_postgresql_down_exit_1_with_one_line(
    kafka_settings: KafkaSettings, names: Topics, env: dict[str, str], unique: Callable[[str], str]
) -> None:
    for args in (("dlq", "list"), ("dlq", "show", names.dlq), ("dlq", "redrive", names.dlq, "--all")):
        ran = await wear({**env, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}, *args)
        assert ran.code == 1, ran
        assert ran.stderr.count("\n") == 1 and ran.stderr.startswith("error: Kafka"), ran.stderr
        assert "Traceback" not in ran.stderr
    doc = a_cycle(4)
    await produce(kafka_settings, names.documents, [(key_of(doc), b"{}")])
    await normalize_until(kafka_settings, names, unique("normalizer"), letters=1)
    down = {**env, "DATABASE_URL": "postgresql://whoop:s3cret-pw@127.0.0.1:1/whoop"}
    for args in (
        ("dlq", "list", names.dlq),
        ("dlq", "show", names.dlq),
        ("dlq", "redrive", names.dlq, "--all"),
    ):
        ran = await wear(down, *args)
        assert ran.code == 1, ran
        assert ran.stderr.count("\n") == 1 and ran.stderr.startswith("error: PostgreSQL"), ran.stderr
        assert "s3cret-pw" not in ran.stderr and "Traceback" not in ran.stderr


async def test_two_redrives_of_one_letter_at_once_land_it_once(
    kafka_settings: KafkaSettings,
    db_pool: asyncpg.Pool,
    names: Topics,
    env: dict[str, str],
    unique: Callable[[str], str],
) -> None:
    doc = a_cycle(6)
    key = await MemberKeys(VaultSettings().keyring()).ensure(db_pool, doc.user_id)
    await produce(kafka_settings, names.documents, [(key_of(doc), seal_value(key, doc.user_id, encode(doc)))])
    await normalize_until(kafka_settings, names, unique("normalizer"), letters=1)

    first, second = await asyncio.gather(
        wear(env, "dlq", "redrive", names.dlq, "--all", "--json"),
        wear(env, "dlq", "redrive", names.dlq, "--all", "--json"),
    )
    assert (first.code, second.code) == (0, 0), (first.stderr, second.stderr)
    outcomes = sorted(ran.json()["letters"][0]["outcome"] for ran in (first, second))
    assert outcomes == ["already_redriven", "landed"]  # the advisory lock serializes them
    assert await ends(kafka_settings, names.records) == len(normalize_document(doc))
