"""Summarise the job timings written by ``sitecustomize.py`` (this directory): per scenario (a generation of
worker processes started together), per kind of job (live or bulk, function), the mean and p95 of each part.

    python tests/bench/jobtimes/report.py DIR [--beside-bulk]

``--beside-bulk`` splits each live kind of job in two: the jobs that ran while some bulk job ran (in any
process) and the others, so what a first sync or backfill does to live work shows part by part.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

PARTS = ("wall", "cpu", "runq", "http_qbo", "http_crm", "db", "db_commit", "redis", "lock_wait", "queued")


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(len(ordered) * 0.95) - 1))]


def _beside(record: dict[str, Any], bulk: list[tuple[float, float]]) -> bool:
    """Whether ``record``'s run overlapped any of the ``bulk`` runs (start, end)."""
    start, end = record["start"], record["start"] + record["wall"]
    return any(s < end and e > start for s, e in bulk)


def main(directory: str, beside_bulk: bool = False) -> None:
    records: list[dict[str, Any]] = []
    for path in Path(directory).glob("jobs-*.jsonl"):
        records += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    first: dict[int, float] = {}
    for record in records:
        first[record["pid"]] = min(first.get(record["pid"], float("inf")), record["start"])
    generation: dict[int, int] = {}
    last, current = None, -1
    for pid in sorted(first, key=first.__getitem__):  # processes started within 20 s of each other: one scenario
        if last is None or first[pid] - last > 20:
            current += 1
        generation[pid], last = current, first[pid]
    bulk = [(r["start"], r["start"] + r["wall"]) for r in records if r["origin"].endswith(".backfill")]
    for number in sorted(set(generation.values())):
        mine = [r for r in records if generation[r["pid"]] == number]
        print(f"== generation {number}: {len(mine)} jobs")
        kinds: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record in mine:
            record["queued"] = record["start"] - record["enqueued"] if record.get("enqueued") else 0.0
            kind = "bulk" if record["origin"].endswith(".backfill") else "live"
            if beside_bulk and kind == "live":
                kind += "+bulk" if _beside(record, bulk) else "-bulk"
            kinds[f"{kind}:{record['func']}"].append(record)
        for name, jobs in sorted(kinds.items()):
            means = {part: round(statistics.mean(r.get(part, 0) for r in jobs) * 1000, 1) for part in PARTS}
            p95 = {part: round(_p95([r.get(part, 0) for r in jobs]) * 1000, 1) for part in ("wall", "runq", "queued")}
            print(f"  {name:32s} n={len(jobs):4d} mean ms {means} p95 ms {p95}")


if __name__ == "__main__":
    main(sys.argv[1], "--beside-bulk" in sys.argv[2:])
