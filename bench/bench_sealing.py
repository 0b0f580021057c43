"""What sealing (crypto-shredding, ADR 0004) costs the hot path: the normalizer's pure step with and without.

Method: the normalizer benchmark's realistic documents (``bench_normalizer.documents``: simulator
members, every resource type, ~1.2 kB values). In one process, interleaved, ``--runs`` times over the
same ``--documents`` documents:

- **plain**: decode the ``DocumentFetched``, normalize, encode each record (the pure step today);
- **sealed**: open the sealed document with its member's key, then the same, then seal each record;
- **seal + open only**: AES-GCM sealing and opening of the same values, nothing else.

Keys are in memory (the runners fetch them once per batch from PostgreSQL and remember them 30 s, so
the per-record cost is the cipher). Medians and the ratio go into the ``## Sealing`` section of
``BENCHMARKS.md`` (only that section is rewritten) unless ``--no-write``.

Run: ``.venv/bin/python bench/bench_sealing.py`` (no services needed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_normalizer import documents  # noqa: E402
from bench.report import write_section  # noqa: E402
from infra.sealing import new_data_key, open_value, seal_value  # noqa: E402
from processors.normalize import normalize_document  # noqa: E402
from schemas.keys import user_of_key  # noqa: E402
from schemas.records import DocumentFetched  # noqa: E402
from schemas.serde import decode_as, encode  # noqa: E402

SECTION = "## Sealing"


def plain(items: list[tuple[bytes, bytes]]) -> float:
    started = time.perf_counter()
    for _, value in items:
        for record in normalize_document(decode_as(DocumentFetched, value)):
            encode(record)
    return len(items) / (time.perf_counter() - started)


def sealed(items: list[tuple[str, bytes, bytes]]) -> float:
    started = time.perf_counter()
    for user, key, value in items:
        for record in normalize_document(decode_as(DocumentFetched, open_value(key, user, value))):
            seal_value(key, user, encode(record))
    return len(items) / (time.perf_counter() - started)


def cipher_only(items: list[tuple[str, bytes, bytes]]) -> float:
    started = time.perf_counter()
    for user, key, value in items:
        seal_value(key, user, open_value(key, user, value))
    return len(items) / (time.perf_counter() - started)


def bench(count: int, runs: int) -> dict[str, list[float]]:
    items = documents(count)
    keys: dict[str, bytes] = {}
    sealed_items: list[tuple[str, bytes, bytes]] = []
    for key, value in items:
        user = user_of_key(key).decode()
        data_key = keys.setdefault(user, new_data_key())
        sealed_items.append((user, data_key, seal_value(data_key, user, value)))
    rates: dict[str, list[float]] = {"plain": [], "sealed": [], "cipher": []}
    for _ in range(runs):
        rates["plain"].append(plain(items))
        rates["sealed"].append(sealed(sealed_items))
        rates["cipher"].append(cipher_only(sealed_items))
    mean_size = statistics.mean(len(v) for _, v in items)
    rates["size"] = [mean_size, statistics.mean(len(v) for _, _, v in sealed_items)]
    return rates


def section(rates: dict[str, list[float]], count: int, runs: int, command: str) -> str:
    med = {name: statistics.median(values) for name, values in rates.items() if name != "size"}
    plain_size, sealed_size = rates["size"]

    def row(label: str, name: str) -> str:
        runs_text = ", ".join(f"{v:,.0f}" for v in rates[name])
        return f"| {label} | {med[name]:,.0f} | {runs_text} | {1e6 / med[name]:.1f} |"

    return "\n".join(
        [
            SECTION,
            "",
            f"Measured {dt.datetime.now(dt.UTC).date().isoformat()} on this machine ({platform.machine()}, "
            f"Python {platform.python_version()}) by `{command}`.",
            "",
            f"Method: {count:,} realistic documents (the normalizer benchmark's), {runs} interleaved runs in "
            "one process, no Kafka. **plain** is the normalizer's pure step (decode, normalize, encode); "
            "**sealed** opens the sealed document with its member's key first and seals every record after "
            "(what the normalizer does since ADR 0004); **cipher only** seals and opens the same values and "
            "does nothing else. Keys are in memory, as the runners remember them.",
            "",
            "| pass | documents/s (median) | runs | µs per document |",
            "|---|---:|---|---:|",
            row("plain (pure step)", "plain"),
            row("sealed (open + pure step + seal)", "sealed"),
            row("cipher only (seal + open)", "cipher"),
            "",
            f"Sealing costs the pure step {(1 - med['sealed'] / med['plain']) * 100:.0f}% "
            f"(sealed/plain = {med['sealed'] / med['plain']:.2f}); the cipher alone is "
            f"{1e6 / med['cipher']:.1f} µs per document of {plain_size:,.0f} bytes (sealed: "
            f"{sealed_size:,.0f} bytes: magic, nonce and tag). The normalizer and the projections also look "
            "up the keys of a batch's members they do not remember: one query per batch.",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--documents", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--no-write", action="store_true", help="print the section, leave BENCHMARKS.md alone"
    )
    args = parser.parse_args()
    command = ".venv/bin/python bench/bench_sealing.py"
    if args.documents != 20_000 or args.runs != 5:
        command += f" --documents {args.documents} --runs {args.runs}"
    text = section(bench(args.documents, args.runs), args.documents, args.runs, command)
    print(text)  # noqa: T201
    if not args.no_write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
