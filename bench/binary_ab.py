"""A/B of two builds of the services on the hot paths: pushes of 1 and 100 changes and
one-credit debits at 32 clients (bench/sync-push.js, bench/credits-use.js), against one cluster. Each
round runs both loads on build A, then on build B (the services restarted on each build);
prints every run and the medians, with the services' CPU seconds per request.

    PATH="$PWD/.bench/venv/bin:$(pg_config --bindir):$PATH" .bench/venv/bin/python bench/binary_ab.py A_RELEASE B_RELEASE [rounds]

(A release folder holds `mana-sync` and `mana-credits`, e.g. one built from a stash into
`.build-ab/release`.) DURATION (default 8s) is each load's length.
"""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
os.chdir(ROOT)
import bench  # noqa: E402

BUILDS = {"A": sys.argv[1], "B": sys.argv[2]}
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
DURATION = os.environ.get("DURATION", "8s")
cluster, credits, sync, tokens = bench.ab_setup(BUILDS["A"], "SELECT 'bench-' || i FROM generate_series(0, 255) AS i")
push_tokens = tokens.file("push-tokens", [f"bench-{i}" for i in range(256)])
use_users = [f"use-{i}" for i in range(1000)]
cluster.sql("mana_credits", "INSERT INTO credits.balances (user_id, balance, total_earned) "
                           "SELECT 'use-' || i, 1000000000, 1000000000 FROM generate_series(0, 999) AS i")
use_tokens = tokens.file("use-tokens", use_users)
results = {}
for round_ in range(ROUNDS):
    for name, release in BUILDS.items():
        sync.stop()
        credits.stop()
        credits = bench.Service(f"{release}/mana-credits", bench.CREDITS_PORT, credits.environment)
        sync = bench.Service(f"{release}/mana-sync", bench.SYNC_PORT, sync.environment)
        for load, script, env in [
            ("push 1×32", "sync-push.js", {"BASE": f"http://127.0.0.1:{bench.SYNC_PORT}", "TOKENS": push_tokens, "BATCH": 1}),
            ("push 100×32", "sync-push.js", {"BASE": f"http://127.0.0.1:{bench.SYNC_PORT}", "TOKENS": push_tokens, "BATCH": 100}),
            ("debit ×32", "credits-use.js", {"BASE": f"http://127.0.0.1:{bench.CREDITS_PORT}", "TOKENS": use_tokens}),
        ]:
            service = sync if script.startswith("sync") else credits
            cpu = service.cpu_seconds()
            metrics, passed = bench.k6(script, f"ab-{name}", VUS=32, DURATION=DURATION, **env)
            cpu = service.cpu_seconds() - cpu
            requests = metrics["http_reqs"]["count"]
            row = {"req/s": metrics["http_reqs"]["rate"], "p95 ms": metrics["http_req_duration"]["p(95)"],
                   "service CPU µs/req": cpu / max(requests, 1) * 1e6, "k6 CPU s": bench.LAST_K6_CPU[0]}
            for key, value in row.items():
                results.setdefault((load, name, key), []).append(value)
            print(round_, load, name, {k: round(v, 1) for k, v in row.items()}, "thresholds", passed, flush=True)
bench.ab_medians(results, 1)
sync.stop(); credits.stop(); cluster.stop()
