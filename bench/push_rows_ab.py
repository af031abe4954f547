"""PostgreSQL alone: `sync.push_rows` as migration 0017 wrote it against the one the
migrations give now, called by pgbench with batches of PUSHES pushes of CHANGES one-row
inserts each (random users of 256, `since` = now: the caught-up client of an interactive app),
one client by default, ROUNDS interleaved rounds of 5 s (the order alternating), pushes a
second per run and the ratio of each round's pair.

    PATH="$PWD/.bench/venv/bin:$(pg_config --bindir):$PATH" .bench/venv/bin/python \\
        bench/push_rows_ab.py RELEASE PUSHES CHANGES [ROUNDS] [CLIENTS]

RELEASE is a folder with `mana-sync` and `mana-credits` (they migrate the private cluster and
stop). 0017's function is created beside the current one as `sync.push_rows_0017`, with the
settings the migrations give the current one. The arrays are literals pgbench sends as text
(the service binds them in binary), the same for both functions. docs/benchmarks.md, session 44.
"""
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
os.chdir(ROOT)
import bench  # noqa: E402

RELEASE, PUSHES, CHANGES = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ROUNDS = int(sys.argv[4]) if len(sys.argv) > 4 else 6
CLIENTS = int(sys.argv[5]) if len(sys.argv) > 5 else 1
SIGNATURE = "(text[], text[], text[], text[], int[], bigint[], int[], text[], text[], text[], text[], text[], text[], text[], text[], text[], text[])"

cluster, credits, sync, tokens = bench.ab_setup(RELEASE, "SELECT 'nobody'")
sync.stop()
credits.stop()
try:
    source = (ROOT / "Sources/ManaSync/Migrations/0017_push_rows.sql").read_text()
    start = source.index("CREATE FUNCTION sync.push_rows(")
    old = source[start:source.index("$$;", start) + 3].replace("sync.push_rows(", "sync.push_rows_0017(", 1)
    settings = cluster.value("mana_sync", "SELECT array_to_string(proconfig, ' SET ') FROM pg_proc WHERE proname = 'push_rows'")
    script = bench.WORK / "push_rows_0017.sql"
    script.write_text(old + f"\nALTER FUNCTION sync.push_rows_0017{SIGNATURE} SET {settings};\n")
    subprocess.run([f"{cluster.bin}/psql", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(bench.PG_PORT), "-U", "mana",
                    "-d", "mana_sync", "-f", str(script)], check=True)

    def texts(values):
        return "ARRAY[" + ",".join("'" + value.replace("'", "''") + "'" for value in values) + "]::text[]"

    def pgbench_script(function):
        """One batch: PUSHES pushes of random users, each of CHANGES inserts."""
        rows = PUSHES * CHANGES
        users = "ARRAY[" + ",".join(f"'u-' || (:u{i})::text" for i in range(PUSHES)) + "]::text[]"
        now = "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint"

        def fill(value, count):
            return f"array_fill({value}, ARRAY[{count}])"
        arguments = [
            users, fill("'bench'::text", PUSHES), fill("'c1'::text", PUSHES), fill("''::text", PUSHES), fill(CHANGES, PUSHES),
            fill(now, PUSHES), fill(1000, PUSHES),
            fill("'items'::text", rows), texts([f"r{i}" for i in range(rows)]), fill("'insert'::text", rows),
            fill("""'{"n":1,"text":"benchmark row"}'::text""", rows), fill("''::text", rows), fill("''::text", rows),
            fill("''::text", rows), fill("''::text", rows),
            texts([f'{{"table":"items","id":"r{i}","op":"insert"' for i in range(rows)]), fill("""',"eventId":"'::text""", rows),
        ]
        lines = [f"\\set u{i} random(0, 255)" for i in range(PUSHES)]
        return "\n".join(lines) + f"\nSELECT count(*) FROM sync.{function}({', '.join(arguments)});\n"

    runs = {"0017": [], "now": []}
    order = [("0017", "push_rows_0017"), ("now", "push_rows")]
    for round_ in range(ROUNDS):
        for name, function in order if round_ % 2 == 0 else order[::-1]:
            tps, _ = cluster.pgbench("mana_sync", pgbench_script(function), CLIENTS, 5)
            runs[name].append(tps * PUSHES)
            print(round_, name, round(tps * PUSHES), "pushes/s", flush=True)
    for name, values in runs.items():
        print(name, [round(value) for value in values], "median", round(statistics.median(values)))
    print("now / 0017 per round", [round(b / a, 3) for a, b in zip(runs["0017"], runs["now"])])
finally:
    cluster.stop()
