"""Load test of the HTTP collector (issue #3 item 8b/8c).

Starts a collector process (``create_app`` under uvicorn, as ``serve`` runs it) on a
free loopback port with a fresh home,
then one or more separate load processes post NDJSON batches (500 events by default)
over keep-alive connections for a bounded time. Reports acknowledged events/s (an
event counts once the collector answered 200 with it accepted: it was fsynced), request
latency, and the collector's peak RSS (VmHWM). After a graceful stop it counts the lines
of the landed files: they must equal the acknowledged events.

    .venv/bin/python bench/collector_load.py --seconds 15 --connections 4
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ingestion.collector.testing import CollectorProcess  # noqa: E402
from ingestion.collector.wal import DEFAULT_SEAL_INTERVAL  # noqa: E402


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


Outcome = tuple[int, int, list[float], float, float]  # sent, acked, latencies, start, end


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _connection_worker(
    port: int, worker: str, batch: int, deadline: float, out: list[Outcome]
) -> None:
    when = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    template = (
        '{"id":"%s-%d","source":"bench","type":"llm.call","subject":"cust-%d","time":"'
        + when
        + '","data":{"model":"gpt-4o","input_tokens":%d,"output_tokens":%d,"cost":"0.00%d"}}'
    )
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/x-ndjson"}
    accepted = sent = 0
    latencies: list[float] = []
    seq = 0
    begun = time.monotonic()
    while time.monotonic() < deadline:
        lines = []
        for _ in range(batch):
            seq += 1
            lines.append(template % (worker, seq, seq % 97, 100 + seq % 4000, seq % 300, seq % 10))
        body = ("\n".join(lines) + "\n").encode()
        started = time.perf_counter()
        conn.request("POST", "/v1/events", body, headers)
        response = conn.getresponse()
        payload = response.read()
        latencies.append(time.perf_counter() - started)
        sent += batch
        if response.status == 200:
            accepted += orjson.loads(payload)["accepted"]
    conn.close()
    out.append((sent, accepted, latencies, begun, time.monotonic()))


def load_process(port: int, proc: int, connections: int, batch: int, seconds: float, queue) -> None:  # type: ignore[no-untyped-def]
    """One load process: ``connections`` keep-alive connections posting in a loop."""
    deadline = time.monotonic() + seconds
    out: list[Outcome] = []
    threads = [
        threading.Thread(
            target=_connection_worker, args=(port, f"p{proc}c{c}", batch, deadline, out)
        )
        for c in range(connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queue.put(out)


def count_landed_lines(home: Path) -> int:
    total = 0
    for path in (home / "landing" / "events").iterdir():
        with path.open("rb") as handle:
            total += sum(
                chunk.count(b"\n") for chunk in iter(lambda h=handle: h.read(1 << 20), b"")
            )
    return total


def land_bytes_baseline(sizes: tuple[int, ...] = (0, 2_000, 10_000)) -> dict[str, float]:
    """Milliseconds per ``LandingZone.land_bytes`` of one 500-event batch (~100 KB) when the
    landing zone already holds N files: the cost a file per request would pay."""
    from ingestion.landing import LandingZone

    zone = LandingZone(Path(tempfile.mkdtemp(prefix="tally-land-bytes-"))).ensure()
    batch = b'{"id":"x","type":"t","subject":"s","time":"2026-01-01T00:00:00Z"}\n' * 1500
    result = {}
    landed = 0
    for target in sizes:
        for i in range(landed, target):  # tiny filler files, named as landing names them
            (zone.events_dir / f"{i + 1:012d}-{i:064x}-filler.ndjson").write_bytes(b"\n")
        landed = max(landed, target)
        started = time.perf_counter()
        for i in range(20):
            zone.land_bytes(batch + str(target + i).encode() + b"\n", "batch.ndjson")
        result[f"land_bytes_ms_with_{target}_files"] = round(
            (time.perf_counter() - started) / 20 * 1000, 2
        )
        landed += 20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--procs", type=int, default=1, help="load processes")
    parser.add_argument(
        "--connections", type=int, default=4, help="keep-alive connections per process"
    )
    parser.add_argument("--seal-interval", type=float, default=DEFAULT_SEAL_INTERVAL)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--land-bytes-baseline",
        action="store_true",
        help="only time LandingZone.land_bytes per batch as the landing zone grows",
    )
    args = parser.parse_args()
    if args.land_bytes_baseline:
        print(json.dumps(land_bytes_baseline()))
        return

    home = Path(tempfile.mkdtemp(prefix="tally-collector-bench-"))
    server = CollectorProcess(home, seal_interval=args.seal_interval)
    port = server.port
    try:
        server.start()
        _, hwm_idle = rss_kib(server.pid)
        cpu_before = cpu_seconds(server.pid)
        ctx = mp.get_context("spawn")
        results = ctx.Queue()
        procs = [
            ctx.Process(
                target=load_process,
                args=(port, p, args.connections, args.batch, args.seconds, results),
            )
            for p in range(args.procs)
        ]
        for proc in procs:
            proc.start()
        rss_samples = []
        outs = []
        while len(outs) < len(procs):
            try:
                outs.append(results.get(timeout=0.25))
            except Exception:  # noqa: BLE001 - queue.Empty: sample memory meanwhile
                rss_samples.append(rss_kib(server.pid)[0])
        for proc in procs:
            proc.join()
        _, hwm = rss_kib(server.pid)
        commits = int(server.health()["commits"])  # type: ignore[call-overload]
        collector_cpu = cpu_seconds(server.pid) - cpu_before
        load_average = os.getloadavg()[0]
        server.stop(timeout=60)
    finally:
        server.kill()  # no-op once stopped

    flat = [item for out in outs for item in out]
    sent = sum(item[0] for item in flat)
    accepted = sum(item[1] for item in flat)
    latencies = sorted(lat for item in flat for lat in item[2])
    # CLOCK_MONOTONIC is system-wide: first request sent to last answer received.
    elapsed = max(item[4] for item in flat) - min(item[3] for item in flat)
    landed = count_landed_lines(home)
    result = {
        "batch": args.batch,
        "load_processes": args.procs,
        "connections": args.procs * args.connections,
        "seconds": round(elapsed, 2),
        "requests": len(latencies),
        "events_sent": sent,
        "events_acknowledged": accepted,
        "events_per_second": round(accepted / elapsed),
        "latency_ms_p50": round(latencies[len(latencies) // 2] * 1000, 1),
        "latency_ms_p99": round(latencies[int(len(latencies) * 0.99)] * 1000, 1),
        "collector_cpu_seconds": round(collector_cpu, 2),
        # CPU cost per acknowledged event, and the rate one dedicated core would give:
        # comparable across runs even when other work shares the machine.
        "collector_cpu_us_per_event": round(collector_cpu / accepted * 1e6, 2),
        "events_per_cpu_second": round(accepted / collector_cpu),
        "load_average_1m": round(load_average, 2),
        "fdatasync_commits": commits,
        "events_per_commit": round(accepted / max(commits, 1)),
        "collector_peak_rss_mib": round(hwm / 1024, 1),
        "collector_idle_rss_mib": round(hwm_idle / 1024, 1),
        "events_landed_after_stop": landed,
        "landed_files": len(list((home / "landing" / "events").iterdir())),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>28}: {value}")
    if landed != accepted:
        sys.exit(f"MISMATCH: {accepted} acknowledged but {landed} landed")


if __name__ == "__main__":
    main()
