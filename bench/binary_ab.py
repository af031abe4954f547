"""A/B of two builds of the services on the hot paths: pushes of 1 and 100 changes and
one-credit debits at 32 clients (bench/sync-push.js, bench/credits-use.js), against one cluster. Each
round runs both loads on build A, then on build B (the services restarted on each build);
prints every run and the medians, with the services' and PostgreSQL's CPU per request and
the machine's idle share.

    PATH="$PWD/.bench/venv/bin:$(pg_config --bindir):$PATH" .bench/venv/bin/python bench/binary_ab.py A_RELEASE B_RELEASE [rounds]

(A release folder holds `mana-sync` and `mana-credits`, e.g. one built from a stash into
`.build-ab/release`.) A build may carry settings for both services after a colon, e.g.
`.build-release/release:MANA_NIO_EXECUTOR=1,NIO_SINGLETON_GROUP_LOOP_COUNT=1`, to compare
settings of one binary; `GOGC` and `K6_*` settings go to k6 instead (the load generator's own
tuning). DURATION (default 8s) is each load's length; LOADS (default
`push1,push100,debit`; also `pull`, 1,000-change pages at 32 clients, and `push1x1`, one-change
pushes from one client, and `health`, mana-sync's `/health`: a request without PostgreSQL) picks
the loads.
"""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
os.chdir(ROOT)
import bench  # noqa: E402



def build(argument):
    """`folder[:KEY=VALUE,...]` → (folder, settings for the services, environment for k6):
    `GOGC` and `K6_*` settings go to k6, the others to both services."""
    folder, _, text = argument.partition(":")
    settings = dict(item.split("=", 1) for item in text.split(",") if item)
    load = {key: value for key, value in settings.items() if key == "GOGC" or key.startswith("K6_")}
    return folder, {key: value for key, value in settings.items() if key not in load}, load


BUILDS = {"A": build(sys.argv[1]), "B": build(sys.argv[2])}
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
DURATION = os.environ.get("DURATION", "8s")
LOADS = os.environ.get("LOADS", "push1,push100,debit").split(",")
cluster, credits, sync, tokens = bench.ab_setup(BUILDS["A"][0], "SELECT 'bench-' || i FROM generate_series(0, 255) AS i "
                                                                "UNION ALL SELECT 'puller'")
base_environment = {"sync": sync.environment, "credits": credits.environment}
push_tokens = tokens.file("push-tokens", [f"bench-{i}" for i in range(256)])
use_users = [f"use-{i}" for i in range(1000)]
cluster.sql("mana_credits", "INSERT INTO credits.balances (user_id, balance, total_earned) "
                           "SELECT 'use-' || i, 1000000000, 1000000000 FROM generate_series(0, 999) AS i")
use_tokens = tokens.file("use-tokens", use_users)
FIRST, COUNT = 1_700_000_000_000_000, 200_000
if "pull" in LOADS:
    cluster.sql("mana_sync", bench.PULL_ROWS_SQL.format(first=FIRST, count=COUNT))
SYNC = f"http://127.0.0.1:{bench.SYNC_PORT}"
ALL_LOADS = {
    "push1": ("push 1×32", "sync-push.js", {"BASE": SYNC, "TOKENS": push_tokens, "BATCH": 1}),
    "health": ("health ×32", "health.js", {"BASE": SYNC}),
    "push1x1": ("push 1×1", "sync-push.js", {"BASE": SYNC, "TOKENS": push_tokens, "BATCH": 1, "VUS": 1}),
    "push100": ("push 100×32", "sync-push.js", {"BASE": SYNC, "TOKENS": push_tokens, "BATCH": 100}),
    "pull": ("pull 1,000×32", "sync-pull.js", {"BASE": SYNC, "TOKEN": tokens.mint("puller"), "FIRST": FIRST, "COUNT": COUNT}),
    "debit": ("debit ×32", "credits-use.js", {"BASE": f"http://127.0.0.1:{bench.CREDITS_PORT}", "TOKENS": use_tokens}),
}
BATCH_COUNTERS = {"sync": ("sync_push_batches_total", "sync_pushes_batched_total"),
                  "credits": ("credits_debit_batches_total", "credits_debits_batched_total")}
results = {}
for round_ in range(ROUNDS):
    for name, (release, settings, load_environment) in BUILDS.items():
        sync.stop()
        credits.stop()
        credits = bench.Service(f"{release}/mana-credits", bench.CREDITS_PORT, {**base_environment["credits"], **settings})
        sync = bench.Service(f"{release}/mana-sync", bench.SYNC_PORT, {**base_environment["sync"], **settings})
        bench.warm(push_tokens, bench.SYNC_WARM_URL.format(port=bench.SYNC_PORT))
        bench.warm(use_tokens, bench.CREDITS_WARM_URL.format(port=bench.CREDITS_PORT))
        for load, script, env in (ALL_LOADS[key] for key in LOADS):
            service = credits if script.startswith("credits") else sync
            cpu, postgres, machine = service.cpu_seconds(), cluster.cpu_seconds(), bench.machine_times()
            # Requests that went to PostgreSQL together (StatementBatches): batches and what went in them.
            counters = BATCH_COUNTERS["sync" if service is sync else "credits"]
            batched = [service.metric(name) for name in counters]
            metrics, passed = bench.k6(script, f"ab-{name}", k6_environment=load_environment, **{"VUS": 32, "DURATION": DURATION, **env})
            cpu, postgres = service.cpu_seconds() - cpu, cluster.cpu_seconds() - postgres
            idle, total = (after - before for after, before in zip(bench.machine_times(), machine))
            requests = metrics["http_reqs"]["count"]
            row = {"req/s": metrics["http_reqs"]["rate"], "p95 ms": metrics["http_req_duration"]["p(95)"],
                   "service CPU µs/req": cpu / max(requests, 1) * 1e6,
                   "PostgreSQL CPU µs/req": postgres / max(requests, 1) * 1e6, "k6 CPU s": bench.LAST_K6_CPU[0],
                   "machine idle %": idle / max(total, 1) * 100}
            batches, items = (service.metric(name) - before for name, before in zip(counters, batched))
            row["batched %"] = items / max(requests, 1) * 100
            row["per batch"] = items / batches if batches else 0
            for key, value in row.items():
                results.setdefault((load, name, key), []).append(value)
            print(round_, load, name, {k: round(v, 1) for k, v in row.items()}, "thresholds", passed, flush=True)
bench.ab_medians(results, 1)
sync.stop(); credits.stop(); cluster.stop()
