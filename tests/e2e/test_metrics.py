"""Every process of ``make run`` answers ``/healthz``, ``/readyz`` and ``/metrics``, and its metrics
hold each family issue 14 lists, with samples once the demo's members send traffic."""

from __future__ import annotations

import asyncio
import signal
import sys
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from deploy.paths import REPO_ROOT

# every family each process must expose (counters without their _total suffix)
FAMILIES: dict[str, set[str]] = {
    "edge": {
        "ingest_webhooks_accepted",
        "ingest_webhooks_rejected",
        "ingest_kafka_append_seconds",
        "ingest_http_requests",
        "ingest_http_request_seconds",
        "query_api_http_requests",
        "query_api_http_request_seconds",
    },
    "simulator": {"simulator_http_requests", "simulator_http_request_seconds"},
    "processors": {
        "processors_whoop_calls",
        "processors_whoop_quota_left",
        "processors_whoop_token_refreshes",
        "processors_kafka_append_seconds",
        "processors_normalizer_records",
        "processors_normalizer_dead_letters",
        "processors_consumer_lag",
    },
    "projections": {
        "projections_batch_apply_seconds",
        "projections_records_applied",
        "projections_consumer_lag",
    },
}
# families that must hold samples once data flows (members connect, backfill, normalize, project)
FLOWING: dict[str, set[str]] = {
    "edge": {"ingest_webhooks_accepted", "ingest_http_requests", "query_api_http_requests"},
    "simulator": {"simulator_http_requests"},
    "processors": {
        "processors_whoop_calls",
        "processors_whoop_quota_left",
        "processors_normalizer_records",
        "processors_consumer_lag",
    },
    "projections": {
        "projections_records_applied",
        "projections_batch_apply_seconds",
        "projections_consumer_lag",
    },
}


def _sampled(text: str) -> tuple[set[str], set[str]]:
    """The family names of an exposition, and those with at least one sample."""
    families = list(text_string_to_metric_families(text))
    return {f.name for f in families}, {f.name for f in families if f.samples}


async def _scrape_until_flowing(
    urls: dict[str, str], budget_s: float
) -> dict[str, tuple[set[str], set[str]]]:
    """Scrape every process until each FLOWING family has samples (or the budget is spent)."""
    deadline = time.monotonic() + budget_s
    seen: dict[str, tuple[set[str], set[str]]] = {}
    async with httpx.AsyncClient(timeout=5.0) as client:
        while True:
            for name, base in urls.items():
                try:
                    if name == "edge":  # one query API request, so its route counter has a sample
                        await client.get(f"{base}/v1/data/nobody/sleep")
                    response = await client.get(f"{base}/metrics")
                except httpx.TransportError:
                    continue  # not listening yet
                if response.status_code == 200:
                    seen[name] = _sampled(response.text)
            flowing = all(name in seen and FLOWING[name] <= seen[name][1] for name in urls)
            if flowing or time.monotonic() > deadline:
                return seen
            await asyncio.sleep(1.0)


async def test_every_process_of_make_run_serves_probes_and_every_metric_family(
    run_env: dict[str, str],
) -> None:
    urls = {
        "edge": f"http://127.0.0.1:{run_env['INGEST_PORT']}",
        "simulator": f"http://127.0.0.1:{run_env['SIMULATOR_PORT']}",
        "processors": f"http://127.0.0.1:{run_env['PROCESSORS_METRICS_PORT']}",
        "projections": f"http://127.0.0.1:{run_env['PROJECTIONS_METRICS_PORT']}",
    }
    command = ("-m", "deploy", "run", "--seconds", "110")  # stopped by SIGINT once every family is seen
    pipe, merged = asyncio.subprocess.PIPE, asyncio.subprocess.STDOUT
    process = await asyncio.create_subprocess_exec(
        sys.executable, *command, cwd=REPO_ROOT, env=run_env, stdout=pipe, stderr=merged
    )
    try:
        seen = await _scrape_until_flowing(urls, budget_s=90)
        async with httpx.AsyncClient(timeout=5.0) as client:
            probes = {
                (name, path): (await client.get(f"{base}{path}")).status_code
                for name, base in urls.items()
                for path in ("/healthz", "/readyz")
            }
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        output, _ = await asyncio.wait_for(process.communicate(), 60)
    log = output.decode(errors="replace")[-3000:]
    assert all(status == 200 for status in probes.values()), (probes, log)
    for name, families in FAMILIES.items():
        assert name in seen, (name, log)
        present, sampled = seen[name]
        assert families <= present, (name, families - present)
        assert FLOWING[name] <= sampled, (name, FLOWING[name] - sampled)
