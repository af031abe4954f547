"""A/B of issue 19's notify change: pushes whose transaction sends the NOTIFY (migration
0008's sync.push_spaces) against pushes announced after their commit (migration 0011 and
PushNotifier). One binary; between runs the script swaps the function's body in the
database, so only the NOTIFY differs. Three rounds of k6 pushes (batch 1 and 10, 1 and 32
clients, 6 s each); prints every run and the medians.

    PATH="$PWD/.bench/venv/bin:$(pg_config --bindir):$PATH" .bench/venv/bin/python bench/notify_ab.py [release folder]
"""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
os.chdir(ROOT)
import bench  # noqa: E402

RELEASE = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / ".build-release/release")
cluster, credits, sync, tokens = bench.ab_setup(RELEASE, "SELECT 'bench-' || g FROM generate_series(0, 255) g")
token_file = tokens.file("push-tokens", [f"bench-{i}" for i in range(256)])
src = open(ROOT / "Sources/ManaSync/Migrations/0008_space_reads.sql").read()
in_tx = src[src.index("CREATE FUNCTION sync.push_spaces("):src.index("-- The push of a user in no space")].replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")
after = open(ROOT / "Sources/ManaSync/Migrations/0011_notify_after_commit.sql").read()
results = {}
for round_ in range(3):
    for name, sql in [("in-transaction", in_tx), ("after-commit", after)]:
        cluster.sql("mana_sync", sql)
        for batch in [1, 10]:
            for clients in [1, 32]:
                metrics, _ = bench.k6("sync-push.js", f"ab-{name}-{batch}-{clients}", BASE=f"http://127.0.0.1:{bench.SYNC_PORT}", TOKENS=token_file, BATCH=batch, VUS=clients, DURATION="6s")
                rate = metrics["http_reqs"]["rate"] * batch
                results.setdefault((batch, clients, name), []).append(rate)
                print(round_, name, batch, clients, round(rate), "p50", round(metrics["http_req_duration"]["med"], 1), flush=True)
bench.ab_medians(results)
sync.stop(); credits.stop(); cluster.stop()
