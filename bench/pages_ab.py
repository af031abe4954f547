"""A/B of issue 19's page change in the mixed scenario: pages built from each row's jsonb
through three CTEs (migration 0006's sync.page_json) against pages aggregated in one pass
from the served text a push stores with each change (migration 0012). One binary; between
runs the script swaps the function's body in the database, so only the page query differs.
Rounds of the mixed scenario (bench/sync-mixed.js, RAMP default 90s), alternating; prints
every run and the medians.

    PATH="$PWD/.bench/venv/bin:$(pg_config --bindir):$PATH" .bench/venv/bin/python bench/pages_ab.py [release folder] [rounds]
"""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
os.chdir(ROOT)
import bench  # noqa: E402

RELEASE = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / ".build-release/release")
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 2
cluster, credits, sync, tokens = bench.ab_setup(RELEASE, "SELECT 'mixed'")
src = open(ROOT / "Sources/ManaSync/Migrations/0006_space_column.sql").read()
jsonb_pages = src[src.index("CREATE OR REPLACE FUNCTION sync.page_json("):src.index("DO $$")]
src = open(ROOT / "Sources/ManaSync/Migrations/0012_served_text.sql").read()
stored_pages = src[src.index("CREATE OR REPLACE FUNCTION sync.page_json("):src.index("-- A member's page")]
results = {}
for round_ in range(ROUNDS):
    for name, sql in [("jsonb, three CTEs (0006)", jsonb_pages), ("stored text, one pass (0012)", stored_pages)]:
        cluster.sql("mana_sync", sql)
        cpu = sync.cpu_seconds()
        metrics, passed = bench.k6("sync-mixed.js", "pages-ab", BASE=f"http://127.0.0.1:{bench.SYNC_PORT}", TOKEN=tokens.mint("mixed"),
                                   RAMP=os.environ.get("RAMP", "90s"), VUS="200")
        cpu = sync.cpu_seconds() - cpu
        row = {"req/s": metrics["http_reqs"]["rate"], "push p95": metrics["http_req_duration{name:push}"]["p(95)"],
               "pull p95": metrics["http_req_duration{name:pull}"]["p(95)"], "all p95": metrics["http_req_duration"]["p(95)"],
               "all p99": metrics["http_req_duration"]["p(99)"], "service CPU s": cpu, "k6 CPU s": bench.LAST_K6_CPU[0]}
        for key, value in row.items():
            results.setdefault((name, key), []).append(value)
        print(round_, name, {k: round(v, 1) for k, v in row.items()}, "thresholds", passed, flush=True)
bench.ab_medians(results, 1)
sync.stop(); credits.stop(); cluster.stop()
