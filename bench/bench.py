#!/usr/bin/env python3
"""The benchmark driver behind `bench/run`: release builds of both services on a private
PostgreSQL cluster, k6 for the HTTP and WebSocket load, pgbench running the same SQL as the
ceiling, all in one run on one machine. Prints a Markdown table and writes it (with the raw
figures as JSON) to .bench/results.md and .bench/results.json, and SVG charts of the figures
(bench/charts.py: ratio to PostgreSQL, latency percentiles, RSS) to docs/charts/ (--charts).

    bench/run                      # everything, 10 s per measurement
    bench/run --only push,use      # some sections: push, pull, bulk, mixed, use, charge, ws, compaction
    DURATION=30s bench/run         # longer measurements
"""
import argparse
import asyncio
import base64
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".bench"
PG_PORT = int(os.environ.get("BENCH_PG_PORT", "54349"))
SYNC_PORT = int(os.environ.get("BENCH_SYNC_PORT", "3250"))
CREDITS_PORT = int(os.environ.get("BENCH_CREDITS_PORT", "3261"))
DURATION = os.environ.get("DURATION", "10s")
SERVICE_KEY = "bench-service-key"
ISSUER = "http://localhost:3001"
RESULTS = []
RUNNING = []  # the services now running, for the profiler
SYNC_EXTRA = []  # --sync-env settings, shown with the figures they produced


def log(text):
    print(text, file=sys.stderr, flush=True)


def as_postgres(command):
    return ["runuser", "-u", "postgres", "--"] + command if os.getuid() == 0 else command


# MARK: PostgreSQL


class Cluster:
    def __init__(self, fsync):
        self.bin = subprocess.check_output(["pg_config", "--bindir"], text=True).strip()
        self.dir = WORK / "pg"
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        if os.getuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(as_postgres([f"{self.bin}/initdb", "-D", f"{self.dir}/data", "-U", "mana", "--auth=trust", "-E", "UTF8",
                                    "--locale=C"]), check=True, stdout=subprocess.DEVNULL)
        options = f"-p {PG_PORT} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir} -c max_connections=300 " \
                  f"-c shared_buffers=512MB -c fsync={'on' if fsync else 'off'} -c synchronous_commit={'on' if fsync else 'off'} " \
                  + os.environ.get("BENCH_PG_OPTIONS", "")
        subprocess.run(as_postgres([f"{self.bin}/pg_ctl", "start", "-D", f"{self.dir}/data", "-w", "-l", f"{self.dir}/server.log",
                                    "-o", options]), check=True, stdout=subprocess.DEVNULL)
        for name in ["mana_sync", "mana_credits"]:
            subprocess.run([f"{self.bin}/createdb", "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "mana", name], check=True)

    def url(self, database):
        return f"postgresql://mana@127.0.0.1:{PG_PORT}/{database}?sslmode=disable"

    def cpu_seconds(self):
        """CPU seconds (user and system) of the postmaster and the processes it runs now (the
        backends of connections that are open, the checkpointer, the WAL writer): a difference
        of two readings over a load whose connections stay open is PostgreSQL's CPU for it."""
        postmaster = int((self.dir / "data" / "postmaster.pid").read_text().split()[0])
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                pid, rest = stat.read_text().split(" (", 1)
            except OSError:
                continue  # ended meanwhile
            fields = rest.rsplit(")", 1)[1].split()
            if int(pid) == postmaster or int(fields[1]) == postmaster:
                total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def sql(self, database, text):
        subprocess.run([f"{self.bin}/psql", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "mana",
                        "-d", database, "-c", text], check=True, stdout=subprocess.DEVNULL)

    def value(self, database, text):
        return subprocess.check_output([f"{self.bin}/psql", "-tA", "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "mana", "-d", database,
                                        "-c", text], text=True).strip()

    def pgbench(self, database, script, clients, seconds):
        """Transactions per second and median latency (ms) of `script` (pgbench's own SQL file)."""
        path = WORK / "pgbench.sql"
        path.write_text(script)
        log_prefix = WORK / "pgbench-log"
        for old in WORK.glob("pgbench-log*"):
            old.unlink()
        output = subprocess.run([f"{self.bin}/pgbench", "-n", "-M", "extended", "-c", str(clients), "-j", str(min(clients, 2)),
                                 "-T", str(seconds), "-f", str(path), "-l", "--log-prefix", str(log_prefix),
                                 "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "mana", database],
                                capture_output=True, text=True)
        if output.returncode != 0:
            raise RuntimeError(f"pgbench failed: {output.stderr[-2000:]}")
        tps = next(float(line.split()[2]) for line in output.stdout.splitlines() if line.startswith("tps"))
        latencies = []
        for file in WORK.glob("pgbench-log*"):
            for line in file.read_text().splitlines():
                parts = line.split()
                if len(parts) > 2:
                    latencies.append(int(parts[2]) / 1000)
        return tps, percentiles(latencies)

    def stop(self):
        subprocess.run(as_postgres([f"{self.bin}/pg_ctl", "stop", "-D", f"{self.dir}/data", "-m", "fast"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def percentiles(values):
    if not values:
        return {"med": 0, "p95": 0, "p99": 0}
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]
    return {"med": statistics.median(values), "p95": pick(0.95), "p99": pick(0.99)}


# MARK: The services


def memberships_stand_in():
    """mana-auth's internal memberships endpoint (MEMBERSHIPS_URL) on loopback: the users
    `member-<n>` belong to the space `org_bench` (the fan-out section), nobody else to a shared
    space. Without an answer mana-sync's reads would be degraded (cursor held)."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            parts = self.path.split("/")
            user = urllib.request.unquote(parts[-2]) if len(parts) > 2 else ""
            memberships = [{"organizationId": FANOUT_SPACE, "role": "member"}] if user.startswith("member-") else []
            body = json.dumps({"userId": user, "memberships": memberships}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *arguments):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


class Service:
    def __init__(self, binary, port, environment, log_name=None):
        self.port = port
        self.name = Path(binary).name
        self.environment = environment
        self.log = open(WORK / f"{log_name or Path(binary).name}.log", "w")
        env = dict(os.environ, **{"PORT": str(port), "HOST": "127.0.0.1", "LOG_LEVEL": "error", "MANA_SERVICE_KEY": SERVICE_KEY, **environment})
        self.process = subprocess.Popen([binary, "serve"], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as answer:
                    if answer.status == 200:
                        RUNNING.append(self)
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{binary} never became ready; see {self.log.name}")

    def rss_mb(self):
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0

    def anon_mb(self):
        """Anonymous resident memory (heap, stacks): what a container limit cannot reclaim.
        The rest of RSS is clean code pages of the binary and the Swift libraries."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
        return 0

    def peak_rss_mb(self):
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0

    def wait_for_metric(self, name, timeout=40):
        """Waits until the service's /metrics has `name` (a gauge set once, e.g. at a start step)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as answer:
                if any(line.startswith(name) for line in answer.read().decode().splitlines()):
                    return True
            time.sleep(0.5)
        log(f"  {self.name} never reported {name} within {timeout} s")
        return False

    def metric(self, name):
        """The sum of a counter's samples on /metrics (every label set), 0 when it has none yet."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as answer:
            lines = answer.read().decode().splitlines()
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(name + " ") or line.startswith(name + "{"))

    def cpu_seconds(self):
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self in RUNNING:
            RUNNING.remove(self)
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def ab_setup(release, subscribers_sql):
    """A private cluster and both services for an A/B script (bench/notify_ab.py,
    bench/pages_ab.py, bench/binary_ab.py): the users `subscribers_sql` selects have Cloud Sync. Returns
    (cluster, credits, sync, tokens)."""
    WORK.mkdir(exist_ok=True)
    cluster = Cluster(True)
    keys = WORK / "auth"
    jwks = subprocess.check_output([f"{release}/mana-credits", "dev-keys", "--dir", str(keys)], text=True).strip()
    tokens = Tokens(keys / "signing-key.json")
    credits = Service(f"{release}/mana-credits", CREDITS_PORT,
                      {"JWKS_URL": jwks, "MANA_AUTH_URL": ISSUER, "DATABASE_URL": cluster.url("mana_credits"), "SYNC_CHARGE_INTERVAL": "0",
                       "GIFT_EXPIRY_INTERVAL": "0", "LEDGER_AUDIT_INTERVAL": "0", "MANA_SYNC_URL": "http://127.0.0.1:9",
                       "MANA_NOTIFY_URL": "http://127.0.0.1:9"})
    cluster.sql("mana_credits", "INSERT INTO credits.sync_subscriptions (user_id, active, is_gifted, gifted_by, gifted_at) "
                                f"SELECT name, true, true, 'bench', now() FROM ({subscribers_sql}) AS users(name)")
    sync = Service(f"{release}/mana-sync", SYNC_PORT,
                   {"DATABASE_URL": cluster.url("mana_sync"), "JWKS_URL": jwks, "MANA_AUTH_URL": ISSUER,
                    "MANA_CREDITS_URL": f"http://127.0.0.1:{CREDITS_PORT}", "MEMBERSHIPS_URL": memberships_stand_in()})
    return cluster, credits, sync, tokens


def machine_times():
    """(idle, total) clock ticks of the whole machine so far (/proc/stat's first line)."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return ticks[3] + ticks[4], sum(ticks)


def warm(token_file, url):
    """One GET of `url` with each token of `token_file`, before a measurement: the services
    verify a token once and then cache it, and mana-sync asks mana-credits once per user for
    the subscription and caches the answer for 5 minutes. Without this the first run after a
    start measured those first calls too (256 of the ~1,500 requests of a one-client push run).
    The measurement is the steady state, as a running service sees it."""
    from concurrent.futures import ThreadPoolExecutor

    def get(token):
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(get, json.loads(Path(token_file).read_text())))
    if any(status != 200 for status in statuses):
        raise RuntimeError(f"warming {url}: statuses {sorted(set(statuses))}")


SYNC_WARM_URL = "http://127.0.0.1:{port}/sync/bench/pull?collection=items&limit=1&since=1970-01-01T00:00:00.000Z"
CREDITS_WARM_URL = "http://127.0.0.1:{port}/api/v1/credits/balance"


def ab_medians(results, digits=None):
    """Prints an A/B script's runs per key (`{key: [value per round]}`) and their median."""
    for key in sorted(results):
        values = results[key]
        print(key, [round(v, digits) for v in values], "median", round(statistics.median(values), digits))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Tokens:
    """Mints EdDSA tokens as mana-auth would, with the development key of `dev-keys`."""

    def __init__(self, key_path):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        stored = json.loads(Path(key_path).read_text())
        self.kid = stored["kid"]
        padded = stored["d"] + "=" * (-len(stored["d"]) % 4)
        self.key = Ed25519PrivateKey.from_private_bytes(base64.urlsafe_b64decode(padded))

    def mint(self, user, role="user"):
        now = int(time.time())
        header = b64url(json.dumps({"alg": "EdDSA", "typ": "JWT", "kid": self.kid}).encode())
        claims = b64url(json.dumps({"sub": user, "email": f"{user}@example.com", "role": role, "iss": ISSUER, "aud": "mana",
                                    "iat": now, "exp": now + 6 * 3600}).encode())
        signature = b64url(self.key.sign(f"{header}.{claims}".encode()))
        return f"{header}.{claims}.{signature}"

    def file(self, name, users):
        path = WORK / f"{name}.json"
        path.write_text(json.dumps([self.mint(user) for user in users]))
        return path


LAST_K6_CPU = [0.0]


def load_share(tps, metrics):
    """k6's CPU per request (µs), and the ratio a service costing no CPU at all would reach
    against `tps` (pgbench's least SQL, transactions a second): the least SQL costs the machine
    `cores / tps` per transaction (pgbench included); a request through k6 costs that plus k6's
    share, on the same cores, if PostgreSQL does the least SQL's work for it. An estimate of the
    most the ratio can be where the machine's CPU is the limit (32 clients; not one hot user,
    whose row lock is); it includes k6's start, about 0.1 CPU s a run."""
    requests = max(metrics["http_reqs"]["count"], 1)
    k6_per_request = LAST_K6_CPU[0] / requests
    least = (os.cpu_count() or 1) / tps
    return {"requests": requests, "k6_us": k6_per_request * 1e6, "bound": least / (least + k6_per_request)}


def k6(script, name, k6_environment=None, **variables):
    """Runs a k6 script; returns its summary metrics and whether its thresholds held. The
    CPU seconds k6 itself used are left in LAST_K6_CPU (it shares the 2 cores).
    `k6_environment` adds to k6's own environment (e.g. `GOGC`, `K6_SYSTEM_TAGS`)."""
    import resource
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = WORK / f"k6-{name}.json"
    arguments = ["k6", "run", "--quiet", "--summary-export", str(summary)]
    for key, value in variables.items():
        arguments += ["-e", f"{key}={value}"]
    profiler = start_profile(name)
    result = subprocess.run(arguments + [str(ROOT / "bench" / script)], capture_output=True, text=True,
                            env={**os.environ, **(k6_environment or {})})
    if profiler:
        finish_profile(profiler, name)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    LAST_K6_CPU[0] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if not summary.exists():
        raise RuntimeError(f"k6 {script} failed: {result.stderr[-2000:]}")
    return json.loads(summary.read_text())["metrics"], result.returncode == 0


def start_profile(name):
    """`PROFILE=<k6 run name>` (e.g. push-1-32, use, mixed): records the whole machine with
    perf (software clock, call graphs) while that k6 run lasts."""
    if os.environ.get("PROFILE") != name or not shutil.which("perf"):
        return None
    return subprocess.Popen(["perf", "record", "-a", "-g", "-F", "499", "-o", str(WORK / f"perf-{name}.data")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def finish_profile(profiler, name):
    """Stops perf and writes .bench/profile-<name>.txt: CPU by process, then the hottest
    functions of each of our services and of PostgreSQL (self time, % of all samples)."""
    import signal
    profiler.send_signal(signal.SIGINT)
    profiler.wait()
    data = str(WORK / f"perf-{name}.data")
    def report(*options):
        return subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--percent-limit", "0.7", *options],
                              capture_output=True, text=True).stdout
    parts = [f"# perf profile of k6 run {name} (whole machine, 499 Hz)", "## CPU by process", report("--sort", "comm", "-g", "none")]
    for service in RUNNING:
        parts += [f"## {service.name} (pid {service.process.pid}): hottest functions",
                  report("--pid", str(service.process.pid), "--sort", "dso,sym", "-g", "none")]
    for command in ["postgres", "k6"]:
        parts += [f"## {command}: hottest functions", report("--comms", command, "--sort", "dso,sym", "-g", "none")]
    (WORK / f"profile-{name}.txt").write_text("\n".join(parts))
    log(f"  profile written to {WORK / f'profile-{name}.txt'}")


ROUNDS = [1]  # --rounds: interleaved service/pgbench pairs per HTTP measurement


def paired(once):
    """Runs one service-then-pgbench measurement `--rounds` times in a row and combines them:
    each figure the median of its rounds (a threshold holds if it held in every round), the
    ratio the median of the rounds' own ratios (each service run against the pgbench run right
    after it, so a slow minute of this shared machine hits both sides of a pair), and the
    rounds' ratios kept in `ratios`. pgbench's own figure moved by half between runs here
    (docs/benchmarks.md, session 38): one pair is a coin toss near a goal; three are a figure."""
    runs = [once() for _ in range(ROUNDS[0])]
    if len(runs) == 1:
        return runs[0]
    combined = {}
    for key, value in runs[0].items():
        values = [run[key] for run in runs]
        if isinstance(value, bool):
            combined[key] = all(values)
        elif isinstance(value, (int, float)):
            combined[key] = statistics.median(values)
        else:
            combined[key] = value
    combined["ratios"] = [run["ratio"] for run in runs]
    return combined


def record(section, **figures):
    RESULTS.append({"section": section, **figures})
    log(f"  {section}: {figures}")


def ms(value):
    return f"{value:.1f}"


# MARK: Sections


# The least SQL that does a push's job: one transaction with the head upsert (taking the
# cursors) and one multi-row insert. What the service adds (idempotency receipt, RLS role,
# NOTIFY, the answer page) is its own cost, and shows in the ratio.
PUSH_SQL = """\\set uid random(0, 255)
BEGIN;
INSERT INTO sync.heads (user_id, app_id, last_cursor) VALUES ('pg-' || :uid, 'bench', (extract(epoch FROM clock_timestamp()) * 1000000)::bigint + COUNT - 1)
    ON CONFLICT (user_id, app_id) DO UPDATE SET last_cursor = greatest(EXCLUDED.last_cursor, sync.heads.last_cursor + COUNT)
    RETURNING last_cursor - COUNT + 1 AS base \\gset
INSERT INTO sync.changes (user_id, app_id, cursor, table_name, record_id, op, data, fields, deleted_at, client_id)
    SELECT 'pg-' || :uid, 'bench', :base::bigint + e.ordinality - 1, e.value->>'table', e.value->>'id', e.value->>'op',
        e.value->'data', e.value->'fields', e.value->>'deletedAt', 'pgbench'
    FROM jsonb_array_elements('BATCH'::jsonb) WITH ORDINALITY AS e;
COMMIT;
"""


def bench_push(cluster, sync, tokens):
    log("sync push")
    token_file = tokens.file("push-tokens", [f"bench-{i}" for i in range(256)])
    warm(token_file, SYNC_WARM_URL.format(port=SYNC_PORT))
    for batch in [1, 10, 100]:
        changes = [{"table": "items", "id": f"r{i}", "op": "insert", "data": {"n": i, "text": "benchmark row"}} for i in range(batch)]
        script = PUSH_SQL.replace("BATCH", json.dumps(changes)).replace("COUNT", str(batch))
        for clients in [1, 32]:
            def once():
                cpu = sync.cpu_seconds()
                metrics, passed = k6("sync-push.js", f"push-{batch}-{clients}", BASE=f"http://127.0.0.1:{SYNC_PORT}", TOKENS=token_file,
                                     BATCH=batch, VUS=clients, DURATION=DURATION)
                memory, cpu = sync.rss_mb(), sync.cpu_seconds() - cpu
                tps, pg_latency = cluster.pgbench("mana_sync", script, clients, int(DURATION.rstrip("s")))
                rate = metrics["http_reqs"]["rate"] * batch
                d = metrics["http_req_duration"]
                return dict(changes_per_s=rate, med=d["med"], p95=d["p(95)"], p99=d["p(99)"], ceiling=tps * batch, ceiling_med=pg_latency["med"],
                            ratio=rate / (tps * batch), rss_mb=memory, thresholds=passed, cpu_service=cpu, cpu_k6=LAST_K6_CPU[0],
                            **load_share(tps, metrics))
            record("push", batch=batch, clients=clients, **paired(once))


# The least SQL for a page: the page query itself (PostgreSQL builds the page's JSON text).
PULL_SQL = """\\set since random(FIRST, LAST)
SELECT * FROM sync.page_json('puller', 'bench', 'items', :since::bigint, NULL, 1000);
"""

# A member's page in one statement: own rows and the space's, merged by cursor (what the
# service adds: the RLS setup, the heads' share locks, the reader's backfill state).
PULL_MEMBER_SQL = """\\set since random(FIRST, LAST)
SELECT * FROM sync.page_json_spaces('member-puller', 'bench', 'items', :since::bigint, NULL, 1000, '{org_bench}');
"""


# Rows seeded by SQL get the served text a push stores with each change (migration 0012).
SERVED_SQL = """UPDATE sync.changes SET served = sync.change_json(table_name, record_id, op, data, fields, deleted_at,
            sync.extra_out(space_id, extra), event_id) WHERE served IS NULL;"""


# `count` changes of the user 'puller' (cursors from `first`), as a push would have stored them.
PULL_ROWS_SQL = """
    INSERT INTO sync.heads (user_id, app_id, last_cursor) VALUES ('puller', 'bench', {first} + {count} - 1)
        ON CONFLICT (user_id, app_id) DO UPDATE SET last_cursor = EXCLUDED.last_cursor;
    INSERT INTO sync.changes (user_id, app_id, cursor, table_name, record_id, op, fields, client_id)
    SELECT 'puller', 'bench', {first} + g - 1, 'items', 'r' || (g % 5000), 'update',
        jsonb_build_object('title', jsonb_build_object('value', 'title ' || g, 'updatedAt', '2026-01-01T00:00:00.000000Z'),
                           'done', jsonb_build_object('value', g % 2 = 0, 'updatedAt', '2026-01-01T00:00:00.000000Z')),
        'loader'
    FROM generate_series(1, {count}) g;
    """ + SERVED_SQL + """
    ANALYZE sync.changes;"""


def bench_pull(cluster, sync, tokens):
    log("sync pull")
    first, count = 1_700_000_000_000_000, 200_000
    cluster.sql("mana_sync", PULL_ROWS_SQL.format(first=first, count=count))
    pull_runs(cluster, sync, tokens, "pull", "puller", PULL_SQL.replace("FIRST", str(first)).replace("LAST", str(first + count - 1001)),
              first, count)

    # A member of a space: every other row is another member's, in the space. The reader's
    # state says it knows the space (no backfill), as after its first read.
    cluster.sql("mana_sync", f"""
        INSERT INTO sync.heads (user_id, app_id, last_cursor) VALUES ('member-puller', 'bench', {first + count - 2}), ('member-writer', 'bench', {first + count - 1})
            ON CONFLICT (user_id, app_id) DO UPDATE SET last_cursor = EXCLUDED.last_cursor;
        INSERT INTO sync.space_heads (space_id, app_id, last_cursor) VALUES ('{FANOUT_SPACE}', 'bench', {first + count - 1})
            ON CONFLICT (space_id, app_id) DO UPDATE SET last_cursor = EXCLUDED.last_cursor;
        INSERT INTO sync.space_backfills (user_id, app_id, table_name, client_id, known) VALUES ('member-puller', 'bench', 'items', '', '{{{FANOUT_SPACE}}}')
            ON CONFLICT DO NOTHING;
        INSERT INTO sync.changes (user_id, app_id, cursor, table_name, record_id, op, fields, client_id, space_id)
        SELECT CASE WHEN g % 2 = 0 THEN 'member-puller' ELSE 'member-writer' END, 'bench', {first} + g - 1, 'items', 'm' || (g % 5000), 'update',
            jsonb_build_object('title', jsonb_build_object('value', 'title ' || g, 'updatedAt', '2026-01-01T00:00:00.000000Z'),
                               'done', jsonb_build_object('value', g % 2 = 0, 'updatedAt', '2026-01-01T00:00:00.000000Z')),
            'loader', CASE WHEN g % 2 = 0 THEN NULL ELSE '{FANOUT_SPACE}' END
        FROM generate_series(1, {count}) g;
        {SERVED_SQL}
        ANALYZE sync.changes;""")
    pull_runs(cluster, sync, tokens, "pull-member", "member-puller",
              PULL_MEMBER_SQL.replace("FIRST", str(first)).replace("LAST", str(first + count - 2001)), first, count - 1000)


def pull_runs(cluster, sync, tokens, section, user, script, first, count):
    """k6 pulling full pages of `user` from random cursors in [first, first + count - 1000),
    then pgbench running `script`, at 1 and 32 clients."""
    for clients in [1, 32]:
        def once():
            cpu = sync.cpu_seconds()
            metrics, passed = k6("sync-pull.js", f"{section}-{clients}", BASE=f"http://127.0.0.1:{SYNC_PORT}", TOKEN=tokens.mint(user),
                                 FIRST=first, COUNT=count, VUS=clients, DURATION=DURATION)
            memory, cpu = sync.rss_mb(), sync.cpu_seconds() - cpu
            tps, pg_latency = cluster.pgbench("mana_sync", script, clients, int(DURATION.rstrip("s")))
            rate = metrics["http_reqs"]["rate"] * 1000
            d = metrics["http_req_duration"]
            return dict(changes_per_s=rate, med=d["med"], p95=d["p(95)"], p99=d["p(99)"], ceiling=tps * 1000, ceiling_med=pg_latency["med"],
                        ratio=rate / (tps * 1000), rss_mb=memory, thresholds=passed, cpu_service=cpu, cpu_k6=LAST_K6_CPU[0],
                        **load_share(tps, metrics))
        record(section, clients=clients, **paired(once))


# The least SQL that does a debit's job: one statement (its own transaction) with the
# guarded balance update and the ledger insert, answering the ledger row.
USE_SQL = """\\set uid random(0, USERS)
WITH b AS (
    UPDATE credits.balances SET balance = balance - 1, total_spent = total_spent + 1, updated_at = now()
    WHERE user_id = 'user-' || :uid AND balance >= 1 RETURNING balance)
INSERT INTO credits.transactions (user_id, type, status, amount, balance_before, balance_after, app_id, description, completed_at)
SELECT 'user-' || :uid, 'usage', 'completed', -1, b.balance + 1, b.balance, 'bench', 'bench use', clock_timestamp() FROM b
RETURNING id, user_id, type, status, amount, balance_before, balance_after, app_id, description, metadata::text, idempotency_key,
    created_at, completed_at;
"""


def bench_use(cluster, credits, tokens):
    log("credits use")
    for label, prefix, users in [("many users", "use", 1000), ("one hot user", "hot", 1)]:
        for source in ["k6", "pgbench"]:
            # Both sides get the same, fresh users with plenty of credits.
            name = f"{prefix}-{source}"
            cluster.sql("mana_credits", f"""
                INSERT INTO credits.balances (user_id, balance, total_earned)
                SELECT '{name}-user-' || g, 1000000000, 1000000000 FROM generate_series(0, {users - 1}) g""")
        token_file = tokens.file(f"{prefix}-tokens", [f"{prefix}-k6-user-{i}" for i in range(users)])
        warm(token_file, CREDITS_WARM_URL.format(port=CREDITS_PORT))
        script = USE_SQL.replace("'user-'", f"'{prefix}-pgbench-user-'").replace("USERS", str(users - 1))
        def once():
            cpu = credits.cpu_seconds()
            metrics, passed = k6("credits-use.js", prefix, BASE=f"http://127.0.0.1:{CREDITS_PORT}", TOKENS=token_file, VUS=32,
                                 DURATION=DURATION)
            memory, cpu = credits.rss_mb(), credits.cpu_seconds() - cpu
            tps, pg_latency = cluster.pgbench("mana_credits", script, 32, int(DURATION.rstrip("s")))
            rate = metrics["http_reqs"]["rate"]
            d = metrics["http_req_duration"]
            return dict(debits_per_s=rate, med=d["med"], p95=d["p(95)"], p99=d["p(99)"], ceiling=tps, ceiling_med=pg_latency["med"],
                        ratio=rate / tps, rss_mb=memory, thresholds=passed, cpu_service=cpu, cpu_k6=LAST_K6_CPU[0], **load_share(tps, metrics))
        record("use", users=label, clients=32, **paired(once))


def bench_charge(cluster, credits, count, concurrency):
    log(f"charge-recurring over {count:,} due subscriptions, {concurrency} at a time")
    prefix = f"due{concurrency}-"
    cluster.sql("mana_credits", f"""
        INSERT INTO credits.balances (user_id, balance, total_earned)
        SELECT '{prefix}' || g, CASE WHEN g % 10 = 0 THEN 10 ELSE 1000 END, CASE WHEN g % 10 = 0 THEN 10 ELSE 1000 END
        FROM generate_series(1, {count}) g;
        INSERT INTO credits.sync_subscriptions (user_id, active, billing_interval, amount_charged, activated_at, next_charge_at)
        SELECT '{prefix}' || g, true, 'monthly', 30, now() - interval '1 month', now() - interval '1 minute'
        FROM generate_series(1, {count}) g;
        ANALYZE;""")
    request = urllib.request.Request(f"http://127.0.0.1:{CREDITS_PORT}/api/v1/internal/sync/charge-recurring", method="POST",
                                     headers={"X-Service-Key": SERVICE_KEY})
    start = time.monotonic()
    with urllib.request.urlopen(request, timeout=3600) as answer:
        summary = json.loads(answer.read())
    seconds = time.monotonic() - start
    record("charge", subscriptions=count, concurrency=concurrency, seconds=seconds, per_s=count / seconds, summary=summary,
           rss_mb=credits.rss_mb())


async def hold_sockets(count, tokens):
    """Opens `count` authenticated idle WebSockets (4 per user); returns them."""
    import websockets
    semaphore = asyncio.Semaphore(64)
    users = [tokens.mint(f"idle-{i}") for i in range(max(1, count // 4))]

    async def open_one(index):
        async with semaphore:
            socket = await websockets.connect(f"ws://127.0.0.1:{SYNC_PORT}/ws", max_size=1 << 20, ping_interval=None)
            await socket.send(json.dumps({"type": "auth", "token": users[index % len(users)], "clientId": f"idle-{index}"}))
            reply = json.loads(await asyncio.wait_for(socket.recv(), 30))
            if reply.get("type") != "auth-ok":
                raise RuntimeError(f"not authenticated: {reply}")
            return socket
    return await asyncio.gather(*(open_one(i) for i in range(count)))


FANOUT_SPACE = "org_bench"


def bench_fanout(cluster, sync, replica, tokens, members, pushes=50):
    """One member pushes into a space on one replica; `members` other members, one WebSocket
    each, listen on another replica. Per notice: from sending the push (so including the push
    itself) to the notice's arrival."""
    import websockets
    log(f"space fan-out: {members} members listening on a second replica, {pushes} pushes into their space")

    async def run():
        semaphore = asyncio.Semaphore(64)

        async def open_one(index):
            async with semaphore:
                socket = await websockets.connect(f"ws://127.0.0.1:{replica.port}/ws", max_size=1 << 20, ping_interval=None)
                await socket.send(json.dumps({"type": "auth", "token": tokens.mint(f"member-{index}"), "clientId": f"m-{index}"}))
                reply = json.loads(await asyncio.wait_for(socket.recv(), 30))
                if reply.get("type") != "auth-ok":
                    raise RuntimeError(f"not authenticated: {reply}")
                return socket
        sockets = await asyncio.gather(*(open_one(i) for i in range(1, members + 1)))
        author = tokens.mint("member-0")
        latencies, missing = [], 0
        loop = asyncio.get_running_loop()
        for n in range(pushes):
            body = json.dumps({"clientId": "author", "changes": [
                {"table": "events", "id": f"e{n}", "op": "insert", "spaceId": FANOUT_SPACE, "data": {"title": f"event {n}"}}]}).encode()
            request = urllib.request.Request(f"http://127.0.0.1:{sync.port}/sync/cal", data=body, method="POST",
                                             headers={"Authorization": f"Bearer {author}", "Content-Type": "application/json"})
            arrivals = [asyncio.ensure_future(arrival(socket)) for socket in sockets]
            sent = time.perf_counter()
            await loop.run_in_executor(None, lambda: urllib.request.urlopen(request).read())
            done, pending = await asyncio.wait(arrivals, timeout=5)
            for task in pending:
                task.cancel()
            missing += len(pending)
            latencies += [task.result() - sent for task in done]
        for socket in sockets:
            await socket.close()
        return latencies, missing

    async def arrival(socket):
        await socket.recv()
        return time.perf_counter()

    latencies, missing = asyncio.new_event_loop().run_until_complete(run())
    p = percentiles([value * 1000 for value in latencies])
    record("fanout", members=members, pushes=pushes, notices=len(latencies), missing=missing, med=p["med"], p95=p["p95"], p99=p["p99"],
           max=max(latencies, default=0) * 1000, within_100ms=sum(1 for value in latencies if value <= 0.1) / max(1, len(latencies)),
           replica_rss_mb=replica.rss_mb())


def bench_ws(cluster, sync, tokens, sockets):
    log(f"WebSocket: {sockets:,} idle connections, push → sync-available")
    loop = asyncio.new_event_loop()
    idle_rss, idle_anon = sync.rss_mb(), sync.anon_mb()
    held = loop.run_until_complete(hold_sockets(sockets, tokens))
    loop.run_until_complete(asyncio.sleep(3))
    held_rss, held_anon = sync.rss_mb(), sync.anon_mb()
    open_count = sum(1 for socket in held if socket.state.name == "OPEN")
    health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{SYNC_PORT}/health").read())
    record("ws-idle", sockets=sockets, still_open=open_count, rss_before_mb=idle_rss, rss_after_mb=held_rss,
           kb_per_socket=(held_rss - idle_rss) * 1024 / sockets, anon_kb_per_socket=(held_anon - idle_anon) * 1024 / sockets,
           health_connections=health.get("connections"))

    token_file = tokens.file("notify-tokens", [f"notify-{i}" for i in range(8)])
    push_tokens = tokens.file("push-tokens", [f"bench-{i}" for i in range(256)])
    for label in ["quiet", "under push load (32 clients, batches of 10)"]:
        load = None
        if label != "quiet":
            load = subprocess.Popen(["k6", "run", "--quiet", "-e", f"BASE=http://127.0.0.1:{SYNC_PORT}", "-e", f"TOKENS={push_tokens}",
                                     "-e", "BATCH=10", "-e", "VUS=32", "-e", "DURATION=60s", str(ROOT / "bench/sync-push.js")],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(2)
        metrics, passed = k6("ws-notify.js", f"notify-{'load' if load else 'quiet'}", BASE=f"http://127.0.0.1:{SYNC_PORT}",
                             TOKENS=token_file, VUS=4, PUSHES=100)
        memory = sync.rss_mb()
        if load:
            load.terminate()
            load.wait()
        d = metrics["push_to_notice"]
        record("ws-notify", load=label, sockets_held=sockets, notices=metrics["notices"]["count"], med=d["med"], p95=d["p(95)"],
               p99=d["p(99)"], rss_mb=memory, thresholds=passed)
    for socket in held:
        loop.run_until_complete(socket.close())
    loop.close()


# MARK: Report


BULK_SQL = """BEGIN;
INSERT INTO sync.heads (user_id, app_id) VALUES ('pg-bulk', 'bulk') ON CONFLICT DO NOTHING;
SELECT last_cursor FROM sync.heads WHERE user_id = 'pg-bulk' AND app_id = 'bulk' FOR UPDATE;
INSERT INTO sync.changes (user_id, app_id, cursor, table_name, record_id, op, data, client_id)
    SELECT 'pg-bulk', 'bulk', (extract(epoch FROM clock_timestamp()) * 1000000)::bigint + e.ordinality, e.value->>'table',
        e.value->>'id', e.value->>'op', e.value->'data', 'pgbench'
    FROM jsonb_array_elements(:'batch'::jsonb) WITH ORDINALITY AS e;
UPDATE sync.heads SET last_cursor = last_cursor + 1 WHERE user_id = 'pg-bulk' AND app_id = 'bulk';
COMMIT;
"""


def bench_bulk(cluster, sync, tokens, count=50_000, runs=3):
    """One push of everything pending after a login (the local-store clients do this): time
    and the service's peak RSS, next to psql running the least SQL for the same rows."""
    log(f"sync bulk push of {count:,} changes")
    times, peaks = [], []
    for run in range(runs):
        user = f"bulk-{run}"
        changes = [{"table": f"t{i % 5}", "id": f"r{i}", "op": "insert",
                    "data": {"id": f"r{i}", "title": f"record {i} after login", "done": i % 2 == 0, "n": i}} for i in range(count)]
        body = json.dumps({"clientId": "login", "since": "1970-01-01T00:00:00Z", "changes": changes}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{SYNC_PORT}/sync/bulk", data=body, method="POST", headers={
            "Authorization": f"Bearer {tokens.mint(user)}", "Content-Type": "application/json"})
        started = time.monotonic()
        with urllib.request.urlopen(request, timeout=120) as answer:
            assert answer.status == 200, answer.status
            answer.read()
        times.append(time.monotonic() - started)
        peaks.append(sync.peak_rss_mb())
    batch_path = WORK / "bulk.json"
    batch_path.write_text(json.dumps(changes))
    pg_times = []
    for _ in range(runs):
        started = time.monotonic()
        subprocess.run([f"{cluster.bin}/psql", "-q", "-v", "ON_ERROR_STOP=1",
                        "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "mana", "-d", "mana_sync", "-f", "-"],
                       input=f"\\set batch `cat {batch_path}`\n" + BULK_SQL, text=True, check=True, stdout=subprocess.DEVNULL)
        pg_times.append(time.monotonic() - started)
    record("bulk", changes=count, body_mb=len(body) / 1e6, seconds=statistics.median(times), runs=times,
           peak_rss_mb=max(peaks), ceiling_seconds=statistics.median(pg_times))


def bench_mixed(cluster, sync, tokens):
    """The original server's mixed load test: one user ramping to 200 virtual users."""
    log("sync mixed scenario (ramping to 200 virtual users)")
    cpu = sync.cpu_seconds()
    # BENCH_PG_OPTIONS="-c shared_preload_libraries=pg_stat_statements": the scenario's
    # statements by time, the buffer writers and temp files, logged after it (docs/benchmarks.md).
    statements = "pg_stat_statements" in os.environ.get("BENCH_PG_OPTIONS", "")
    if statements:
        cluster.sql("mana_sync", "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset(); SELECT pg_stat_reset_shared('bgwriter'); SELECT pg_stat_reset()")
    hits, reads = sync.metric("sync_page_cache_hits_total"), sync.metric("sync_page_cache_reads_total")
    metrics, passed = k6("sync-mixed.js", "mixed", BASE=f"http://127.0.0.1:{SYNC_PORT}", TOKEN=tokens.mint("mixed"),
                         RAMP=os.environ.get("RAMP", "3m30s"), VUS=os.environ.get("MIXED_VUS", "200"))
    cpu = sync.cpu_seconds() - cpu
    if statements:
        log(cluster.value("mana_sync", """
            SELECT string_agg(format('%s calls, %s ms total, %s ms mean, read %s hit %s dirtied %s written %s temp %s: %s', calls,
                round(total_exec_time), round(mean_exec_time::numeric, 3), shared_blks_read, shared_blks_hit, shared_blks_dirtied,
                shared_blks_written, temp_blks_written, left(regexp_replace(query, '\\s+', ' ', 'g'), 160)), E'\n' ORDER BY total_exec_time DESC)
            FROM (SELECT * FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 15) s"""))
        log(cluster.value("mana_sync", "SELECT row_to_json(b)::text FROM pg_stat_bgwriter b"))
        log(cluster.value("mana_sync", "SELECT format('temp files %s, %s MB; blks read %s hit %s', temp_files, temp_bytes / 1048576, blks_read, blks_hit) FROM pg_stat_database WHERE datname = 'mana_sync'"))
    # Pages cut from held stretches of the log (docs/sync.md, "Page cache"), and stretches read.
    hits, reads = sync.metric("sync_page_cache_hits_total") - hits, sync.metric("sync_page_cache_reads_total") - reads
    trend = lambda name: metrics.get(name, {})
    push, pull, every = trend("http_req_duration{name:push}"), trend("http_req_duration{name:pull}"), trend("http_req_duration")
    record("mixed", requests=metrics["http_reqs"]["count"], rate=metrics["http_reqs"]["rate"],
           failed=metrics["http_req_failed"]["value"] if "value" in metrics["http_req_failed"] else metrics["http_req_failed"].get("rate", 0),
           push_p95=push.get("p(95)", 0), pull_p95=pull.get("p(95)", 0), all_p95=every.get("p(95)", 0), all_p99=every.get("p(99)", 0),
           rss_mb=sync.rss_mb(), anon_mb=sync.anon_mb(), peak_rss_mb=sync.peak_rss_mb(), cpu_service=cpu, cpu_k6=LAST_K6_CPU[0],
           pages_cut=hits, stretches_read=reads, thresholds=passed,
           settings=" ".join(SYNC_EXTRA) or "defaults")


# A history of RECORDS records in 5 tables, each inserted then updated UPDATES times (the
# field rotating over title, n and done, `at` rising), 30 days old: RECORDS × (UPDATES + 1) rows.
COMPACT_SEED_SQL = """
WITH base AS (SELECT ((extract(epoch FROM now() - interval '30 days') * 1000000)::bigint / 1000000) * 1000000 AS c)
INSERT INTO sync.changes (user_id, app_id, cursor, table_name, record_id, op, data, fields, client_id)
SELECT 'USER', 'notes', base.c + k * RECORDS + r, 't' || (r % 5), 'r' || r,
    CASE WHEN k = 0 THEN 'insert' ELSE 'update' END,
    CASE WHEN k = 0 THEN jsonb_build_object('id', 'r' || r, 'title', 'new', 'n', 0, 'done', false) END,
    CASE WHEN k > 0 THEN jsonb_build_object((ARRAY['title', 'n', 'done'])[k % 3 + 1], jsonb_build_object('value', k,
        'at', to_char(timestamp '2026-10-01' + k * interval '1 minute' + r * interval '1 millisecond', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))) END,
    'seed'
FROM base, generate_series(0, UPDATES) AS k, generate_series(0, RECORDS - 1) AS r;
INSERT INTO sync.heads (user_id, app_id, last_cursor)
    SELECT 'USER', 'notes', max(cursor) FROM sync.changes WHERE user_id = 'USER' AND app_id = 'notes';
"""

# The least SQL that does the fold on this history (no deletes in it, so the inserts stay as
# they are): the last update of each record takes every field's winning entry, then the
# other updates go (the served text of the rewritten rows built again, as ours does). One
# set-based transaction, offline: no online batches, no plan in Swift.
COMPACT_LEAST_SQL = """
BEGIN;
CREATE TEMP TABLE last_rows AS
    SELECT DISTINCT ON (table_name, record_id) table_name, record_id, cursor FROM sync.changes
    WHERE user_id = 'USER' AND app_id = 'notes' AND op = 'update' ORDER BY table_name, record_id, cursor DESC;
UPDATE sync.changes c SET fields = w.fields, client_id = '',
    served = sync.change_json(c.table_name, c.record_id, c.op, c.data, w.fields, c.deleted_at, sync.extra_out(c.space_id, c.extra), c.event_id)
FROM (
    SELECT table_name, record_id, jsonb_object_agg(key, value) AS fields FROM (
        SELECT DISTINCT ON (c.table_name, c.record_id, e.key) c.table_name, c.record_id, e.key, e.value
        FROM sync.changes c, jsonb_each(c.fields) e
        WHERE c.user_id = 'USER' AND c.app_id = 'notes' AND c.op = 'update'
        ORDER BY c.table_name, c.record_id, e.key, (e.value->>'at')::timestamptz DESC, c.cursor DESC) winners
    GROUP BY table_name, record_id) w
JOIN last_rows l USING (table_name, record_id)
WHERE c.user_id = 'USER' AND c.app_id = 'notes' AND c.cursor = l.cursor;
DELETE FROM sync.changes c WHERE c.user_id = 'USER' AND c.app_id = 'notes' AND c.op = 'update'
    AND c.cursor NOT IN (SELECT cursor FROM last_rows);
COMMIT;
"""


def full_pull(token):
    """A new device's first sync: every table from the epoch, pages of 1,000 (the default),
    over one keep-alive connection. Seconds and changes received."""
    import http.client
    connection = http.client.HTTPConnection("127.0.0.1", SYNC_PORT, timeout=120)
    started, received = time.monotonic(), 0
    for table in [f"t{i}" for i in range(5)]:
        since = "1970-01-01T00:00:00.000000Z"
        while True:
            connection.request("GET", f"/sync/notes/pull?collection={table}&since={urllib.request.quote(since)}",
                               headers={"Authorization": f"Bearer {token}", "X-Client-Id": "new-device"})
            answer = connection.getresponse()
            body = json.loads(answer.read())
            assert answer.status == 200, body
            received += len(body["serverChanges"])
            since = body["syncedUntil"]
            if not body["hasMore"]:
                break
    connection.close()
    return time.monotonic() - started, received


def table_figures(cluster, user):
    return {"rows": int(cluster.value("mana_sync", f"SELECT count(*) FROM sync.changes WHERE user_id = '{user}'")),
            "bytes": int(cluster.value("mana_sync", "SELECT pg_total_relation_size('sync.changes')"))}


def bench_compaction(cluster, sync, tokens, release, records, updates):
    """Issue 21's goals: RECORDS × UPDATES history; a new device's full pull before and after
    `mana-sync compact`, the compaction's time and peak RSS, push latency beside it, the
    table's size, and the least SQL doing the same fold offline. The sizes are of the whole
    table: run this section alone (`--only compaction`) for figures of this history only."""
    import threading
    user = "compact"
    log(f"compaction: seeding {records:,} records × {updates} updates")
    seed = lambda who: cluster.sql("mana_sync", COMPACT_SEED_SQL.replace("USER", who).replace("RECORDS", str(records))
                                   .replace("UPDATES", str(updates)))
    seed(user)
    cluster.sql("mana_sync", "VACUUM ANALYZE sync.changes")
    before = table_figures(cluster, user)
    token = tokens.mint(user)
    pull_before, received_before = full_pull(token)
    log(f"  full pull before: {received_before:,} changes in {pull_before:.1f} s")
    # Pushes of one change to the same (user, app), one after another, before and during the fold.
    latencies = {"baseline": [], "during": []}
    phase = ["baseline"]
    stop = threading.Event()

    def pusher():
        import http.client
        connection = http.client.HTTPConnection("127.0.0.1", SYNC_PORT, timeout=60)
        index = 0
        while not stop.is_set():
            index += 1
            body = json.dumps({"clientId": "writer", "changes": [{"table": "t0", "id": f"live-{index}", "op": "insert", "data": {"n": index}}]})
            started = time.monotonic()
            connection.request("POST", "/sync/notes", body=body, headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            answer = connection.getresponse()
            answer.read()
            assert answer.status == 200
            latencies[phase[0]].append((time.monotonic() - started) * 1000)
            time.sleep(0.02)

    # Every wait for a lock longer than 10 ms is logged by PostgreSQL: the pushes' lock waits
    # during the fold are counted from its log.
    cluster.sql("mana_sync", "ALTER SYSTEM SET log_lock_waits = on")
    cluster.sql("mana_sync", "ALTER SYSTEM SET deadlock_timeout = '10ms'")
    cluster.sql("mana_sync", "SELECT pg_reload_conf()")
    server_log = cluster.dir / "server.log"
    log_start = server_log.stat().st_size
    thread = threading.Thread(target=pusher)
    thread.start()
    time.sleep(5)
    phase[0] = "during"
    environment = dict(os.environ, DATABASE_URL=cluster.url("mana_sync"), LOG_LEVEL="error")
    started = time.monotonic()
    output = subprocess.run(["/usr/bin/time", "-f", "peak-kb %M", f"{release}/mana-sync", "compact", "--user", user, "--older-than", "1d"],
                            env=environment, capture_output=True, text=True, check=True)
    seconds = time.monotonic() - started
    peak_mb = int(output.stderr.split("peak-kb")[-1].split()[0]) / 1024
    stop.set()
    thread.join()
    lock_waits = server_log.read_bytes()[log_start:].decode(errors="replace").count("still waiting for")
    cluster.sql("mana_sync", "ALTER SYSTEM RESET log_lock_waits")
    cluster.sql("mana_sync", "ALTER SYSTEM RESET deadlock_timeout")
    cluster.sql("mana_sync", "SELECT pg_reload_conf()")
    log(f"  {output.stdout.strip()} in {seconds:.1f} s")
    old_rows = int(cluster.value("mana_sync", f"SELECT count(*) FROM sync.changes WHERE user_id = '{user}' AND client_id <> 'writer'"))
    cluster.sql("mana_sync", "VACUUM sync.changes")
    after_vacuum = table_figures(cluster, user)
    cluster.sql("mana_sync", "VACUUM FULL sync.changes")
    after_full = table_figures(cluster, user)
    pull_after, received_after = full_pull(token)
    log(f"  full pull after: {received_after:,} changes in {pull_after:.2f} s")
    # The ceiling: the least SQL on the second copy of the history, timed by psql.
    seed("compact-sql")
    cluster.sql("mana_sync", "VACUUM ANALYZE sync.changes")
    started = time.monotonic()
    cluster.sql("mana_sync", COMPACT_LEAST_SQL.replace("USER", "compact-sql"))
    ceiling = time.monotonic() - started
    same = cluster.value("mana_sync", """
        SELECT count(*) FROM (SELECT table_name, record_id, op, data, fields FROM sync.changes WHERE user_id = 'compact' AND client_id <> 'writer'
                              EXCEPT SELECT table_name, record_id, op, data, fields FROM sync.changes WHERE user_id = 'compact-sql') d""")
    pct = lambda values: percentiles(values) | {"max": max(values) if values else 0, "count": len(values)}
    record("compaction", records=records, updates=updates, rows_before=before["rows"], rows_after=old_rows,
           bytes_before=before["bytes"], bytes_after_vacuum=after_vacuum["bytes"], bytes_after_full=after_full["bytes"],
           pull_before_s=pull_before, received_before=received_before, pull_after_s=pull_after, received_after=received_after,
           compact_s=seconds, compact_peak_mb=peak_mb, summary=output.stdout.strip(), ceiling_s=ceiling, differing_rows=int(same),
           push_baseline=pct(latencies["baseline"]), push_during=pct(latencies["during"]), lock_waits=lock_waits, sync_rss_mb=sync.rss_mb())


def ratio_text(r):
    """The ratio, and with --rounds each pair's ratio after it."""
    if "ratios" not in r:
        return f"{r['ratio']:.2f}"
    return f"**{r['ratio']:.2f}** ({', '.join(f'{x:.2f}' for x in r['ratios'])})"


def report(machine):
    lines = [f"Machine: {machine}", f"Command: `bench/run {' '.join(sys.argv[1:])}` (DURATION={DURATION})", ""]
    sections = {row["section"] for row in RESULTS}
    # The HTTP sections: one table each, a row per measurement next to its pgbench ceiling.
    http_tables = [
        ("push", "sync push", "mana-sync changes/s", "changes/s", "changes_per_s", lambda r: f"batch {r['batch']}"),
        ("pull", "sync pull, pages of 1,000", "changes/s", "changes/s", "changes_per_s", lambda r: "200,000 changes"),
        ("pull-member", "sync pull of a space member, pages of 1,000", "changes/s", "changes/s", "changes_per_s",
         lambda r: "100,000 own + 100,000 of the space"),
        ("use", "credits use", "debits/s", "debits/s", "debits_per_s", lambda r: r["users"]),
    ]
    for section, title, unit, ceiling_unit, rate, label in http_tables:
        rows = [r for r in RESULTS if r["section"] == section]
        if not rows:
            continue
        lines += [f"| {title} | clients | {unit} | p50 / p95 / p99 ms | pgbench least SQL {ceiling_unit} (p50 ms) | ratio | "
                  "ratio of a service costing nothing, k6 beside (k6 µs/request) | RSS MB | CPU s service / k6 | k6 thresholds |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            bound = f"{r['bound']:.2f} ({r['k6_us']:.0f})" if "bound" in r else "–"
            lines.append(f"| {label(r)} | {r['clients']} | {r[rate]:,.0f} | {ms(r['med'])} / {ms(r['p95'])} / {ms(r['p99'])} | "
                         f"{r['ceiling']:,.0f} ({ms(r['ceiling_med'])}) | {ratio_text(r)} | {bound} | {r['rss_mb']:.0f} | "
                         f"{r['cpu_service']:.1f} / {r['cpu_k6']:.1f} | {'pass' if r['thresholds'] else 'FAIL'} |")
        lines += ["", "(The ratio a service costing no CPU would reach: the least SQL's cost per transaction on the machine, "
                  f"{os.cpu_count()} cores ÷ pgbench's rate, against that plus k6's CPU per request: an estimate of the most the ratio can be "
                  "where the machine's CPU is the limit, the 32-client rows, not one hot user's, which a row lock limits.)", ""]
    for r in (r for r in RESULTS if r["section"] == "mixed"):
        lines += ["| mixed scenario (1 user, ramping to 200 VUs) | requests | req/s | errors | push p95 ms (< 300) | pull p95 ms (< 200) | "
                  "all p95 / p99 ms (< 500 / 1,000) | RSS (anonymous) / peak MB | CPU s service / k6 | pages from memory / stretches read | k6 thresholds |",
                  "|---|---|---|---|---|---|---|---|---|---|---|",
                  f"| {r['settings']} | {r['requests']:,} | {r['rate']:,.0f} | {r['failed'] * 100:.2f}% | {ms(r['push_p95'])} | {ms(r['pull_p95'])} | "
                  f"{ms(r['all_p95'])} / {ms(r['all_p99'])} | {r['rss_mb']:.0f} ({r.get('anon_mb', 0):.0f}) / {r['peak_rss_mb']:.0f} | "
                  f"{r['cpu_service']:.0f} / {r['cpu_k6']:.0f} | {r.get('pages_cut', 0):,.0f} / {r.get('stretches_read', 0):,.0f} | "
                  f"{'pass' if r['thresholds'] else 'FAIL'} |", ""]
    for r in (r for r in RESULTS if r["section"] == "bulk"):
        lines += [f"bulk push: {r['changes']:,} changes ({r['body_mb']:.1f} MB) in one request, one transaction: **{r['seconds']:.2f} s** "
                  f"(median of {len(r['runs'])}: {', '.join(f'{t:.2f}' for t in r['runs'])}), mana-sync peak RSS **{r['peak_rss_mb']:.0f} MB**; "
                  f"psql running the least SQL for the same rows {r['ceiling_seconds']:.2f} s (ratio {r['ceiling_seconds'] / r['seconds']:.2f})", ""]
    for r in (r for r in RESULTS if r["section"] == "charge"):
        lines += [f"charge-recurring, {r['concurrency']} renewals at a time: {r['subscriptions']:,} due subscriptions in **{r['seconds']:.1f} s** ({r['per_s']:,.0f}/s), "
                  f"summary {json.dumps(r['summary'])}, mana-credits RSS {r['rss_mb']:.0f} MB", ""]
    for r in (r for r in RESULTS if r["section"] == "ws-idle"):
        lines += [f"WebSocket: {r['sockets']:,} authenticated idle connections held ({r['still_open']:,} open after 3 s, /health "
                  f"connections {r['health_connections']}); mana-sync RSS {r['rss_before_mb']:.0f} → {r['rss_after_mb']:.0f} MB = "
                  f"**{r['kb_per_socket']:.1f} KB per connection** ({r['anon_kb_per_socket']:.1f} KB anonymous)", ""]
    for r in (r for r in RESULTS if r["section"] == "compaction"):
        b, d = r["push_baseline"], r["push_during"]
        lines += [f"compaction of {r['records']:,} records × {r['updates']} updates: **{r['rows_before']:,} → {r['rows_after']:,} rows** in "
                  f"**{r['compact_s']:.1f} s** (`mana-sync compact`, peak RSS {r['compact_peak_mb']:.0f} MB; {r['summary']}); the least SQL doing the "
                  f"same fold offline in one transaction {r['ceiling_s']:.1f} s (ratio {r['ceiling_s'] / r['compact_s']:.2f}; rows differing from "
                  f"ours: {r['differing_rows']}). A new device's full pull from the epoch: **{r['pull_before_s']:.1f} s** for "
                  f"{r['received_before']:,} changes before, **{r['pull_after_s']:.2f} s** for {r['received_after']:,} after. Table with indexes "
                  f"{r['bytes_before'] / 1e6:.0f} MB before, {r['bytes_after_vacuum'] / 1e6:.0f} MB after VACUUM (space kept for reuse), "
                  f"{r['bytes_after_full'] / 1e6:.1f} MB rewritten (VACUUM FULL): **{r['bytes_before'] / r['bytes_after_full']:.0f}×** smaller. "
                  f"Pushes to the same (user, app), one at a time: p50 / p99 / max {ms(b['med'])} / {ms(b['p99'])} / {ms(b['max'])} ms before "
                  f"({b['count']}), {ms(d['med'])} / {ms(d['p99'])} / {ms(d['max'])} ms during the fold ({d['count']}); lock waits over 10 ms "
                  f"in PostgreSQL's log meanwhile: **{r['lock_waits']}**.", ""]
    for r in (r for r in RESULTS if r["section"] == "fanout"):
        lines += [f"space fan-out across replicas: {r['pushes']} pushes into a space by one member on replica 1, {r['members']} other members "
                  f"listening on replica 2 (one WebSocket each): {r['notices']:,} notices, {r['missing']} missing; from sending the push to "
                  f"each member's notice p50 / p95 / p99 / max **{ms(r['med'])} / {ms(r['p95'])} / {ms(r['p99'])} / {ms(r['max'])} ms**, "
                  f"{r['within_100ms'] * 100:.1f} % within 100 ms; replica 2 RSS {r['replica_rss_mb']:.0f} MB", ""]
    if "ws-notify" in sections:
        lines += ["| push → sync-available on another connection | notices | p50 / p95 / p99 ms | RSS MB | k6 thresholds |", "|---|---|---|---|---|"]
        for r in (r for r in RESULTS if r["section"] == "ws-notify"):
            lines.append(f"| {r['load']}, {r['sockets_held']:,} idle sockets held | {r['notices']:.0f} | {ms(r['med'])} / {ms(r['p95'])} / {ms(r['p99'])} | "
                         f"{r['rss_mb']:.0f} | {'pass' if r['thresholds'] else 'FAIL'} |")
        lines.append("")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="push,pull,bulk,mixed,use,charge,ws,fanout,compaction", help="comma-separated sections")
    parser.add_argument("--release", default=str(ROOT / ".build/release"), help="folder of the release binaries")
    parser.add_argument("--subscriptions", type=int, default=100_000, help="due subscriptions for charge-recurring")
    parser.add_argument("--charge-concurrency", default="1,4", help="SYNC_CHARGE_CONCURRENCY values to time")
    parser.add_argument("--sockets", type=int, default=5_000, help="idle WebSockets to hold")
    parser.add_argument("--members", type=int, default=200, help="listening members of the fan-out section")
    parser.add_argument("--compact-records", type=int, default=10_000, help="records of the compaction history")
    parser.add_argument("--compact-updates", type=int, default=100, help="updates per record of the compaction history")
    parser.add_argument("--fsync", choices=["on", "off"], default="on", help="PostgreSQL fsync/synchronous_commit")
    parser.add_argument("--sync-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for mana-sync, e.g. SYNC_PULL_PAGE_DEFAULT=100 (repeatable)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="service/pgbench pairs per push, pull and debit measurement; figures are their medians")
    parser.add_argument("--charts", default=str(ROOT / "docs" / "charts"), help="folder for the SVG charts ('' for none)")
    arguments = parser.parse_args()
    sections = set(arguments.only.split(","))
    SYNC_EXTRA.extend(arguments.sync_env)
    ROUNDS[0] = max(arguments.rounds, 1)
    WORK.mkdir(exist_ok=True)

    cluster = Cluster(arguments.fsync == "on")
    services = []
    try:
        keys = WORK / "auth"
        jwks = subprocess.check_output([f"{arguments.release}/mana-credits", "dev-keys", "--dir", str(keys)], text=True).strip()
        tokens = Tokens(keys / "signing-key.json")
        common = {"JWKS_URL": jwks, "MANA_AUTH_URL": ISSUER, "MEMBERSHIPS_URL": memberships_stand_in()}
        def start_credits(**extra):
            return Service(f"{arguments.release}/mana-credits", CREDITS_PORT,
                           dict(common, DATABASE_URL=cluster.url("mana_credits"), SYNC_CHARGE_INTERVAL="0", GIFT_EXPIRY_INTERVAL="0", LEDGER_AUDIT_INTERVAL="0",
                                MANA_SYNC_URL=f"http://127.0.0.1:{SYNC_PORT}", MANA_NOTIFY_URL="http://127.0.0.1:9", **extra))
        credits = start_credits()
        services.append(credits)
        sync = Service(f"{arguments.release}/mana-sync", SYNC_PORT,
                       dict(common, DATABASE_URL=cluster.url("mana_sync"), MANA_CREDITS_URL=f"http://127.0.0.1:{CREDITS_PORT}",
                            SYNC_WS_QUEUE_LIMIT="1024", **dict(item.split("=", 1) for item in arguments.sync_env)))
        services.append(sync)
        # Every benchmark user of mana-sync has Cloud Sync (a gift): the gate answers from mana-credits, then its cache.
        cluster.sql("mana_credits", """
            INSERT INTO credits.sync_subscriptions (user_id, active, is_gifted, gifted_by, gifted_at)
            SELECT name, true, true, 'bench', now() FROM (
                SELECT 'bench-' || g AS name FROM generate_series(0, 255) g UNION ALL SELECT 'notify-' || g FROM generate_series(0, 7) g
                UNION ALL SELECT 'idle-' || g FROM generate_series(0, 4999) g UNION ALL SELECT 'puller' UNION ALL SELECT 'mixed'
                UNION ALL SELECT 'bulk-' || g FROM generate_series(0, 9) g UNION ALL SELECT 'compact'
                UNION ALL SELECT 'member-' || g FROM generate_series(0, 999) g UNION ALL SELECT 'member-puller') users""")
        # Idle as in production: after the services handed back their start's code pages
        # (one memory-trim interval after the migrations, process_code_pages_released_bytes).
        for service in (sync, credits):
            service.wait_for_metric("process_code_pages_released_bytes")
        record("idle", sync_rss_mb=sync.rss_mb(), credits_rss_mb=credits.rss_mb(), sync_anon_mb=sync.anon_mb(),
               credits_anon_mb=credits.anon_mb())
        if "push" in sections:
            bench_push(cluster, sync, tokens)
        if "pull" in sections:
            bench_pull(cluster, sync, tokens)
        if "bulk" in sections:
            bench_bulk(cluster, sync, tokens)
        if "mixed" in sections:
            bench_mixed(cluster, sync, tokens)
        if "use" in sections:
            bench_use(cluster, credits, tokens)
        if "charge" in sections:
            for concurrency in arguments.charge_concurrency.split(","):
                credits.stop()
                services.remove(credits)
                credits = start_credits(SYNC_CHARGE_CONCURRENCY=concurrency)
                services.append(credits)
                bench_charge(cluster, credits, arguments.subscriptions, int(concurrency))
        if "ws" in sections:
            bench_ws(cluster, sync, tokens, arguments.sockets)
        if "fanout" in sections:
            replica = Service(f"{arguments.release}/mana-sync", SYNC_PORT + 1, dict(sync.environment, PORT=str(SYNC_PORT + 1)), log_name="mana-sync-2")
            services.append(replica)
            bench_fanout(cluster, sync, replica, tokens, arguments.members)
        if "compaction" in sections:
            bench_compaction(cluster, sync, tokens, arguments.release, arguments.compact_records, arguments.compact_updates)
    finally:
        for service in services:
            service.stop()
        cluster.stop()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "?")
    memory = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    swift = subprocess.run(["swift", "--version"], capture_output=True, text=True).stdout.splitlines()[0] if shutil.which("swift") else "?"
    pg = subprocess.check_output(["pg_config", "--version"], text=True).strip()
    idle = next(r for r in RESULTS if r["section"] == "idle")
    machine = (f"{os.cpu_count()} cores ({cpu}), {memory} GB, {platform.system()} {platform.machine()}, {swift}, {pg} "
               f"(private cluster, fsync {arguments.fsync}), release builds; idle RSS mana-sync {idle['sync_rss_mb']:.0f} MB, "
               f"mana-credits {idle['credits_rss_mb']:.0f} MB (of which anonymous: {idle['sync_anon_mb']:.1f} / "
               f"{idle['credits_anon_mb']:.1f} MB; the rest is clean, shared code pages)")
    text = report(machine)
    (WORK / "results.md").write_text(text + "\n")
    results = {"date": time.strftime("%Y-%m-%d"), "machine": machine, "command": f"bench/run {' '.join(sys.argv[1:])}",
               "duration": DURATION, "ceiling_kind": "least SQL", "results": RESULTS}
    (WORK / "results.json").write_text(json.dumps(results, indent=1, default=str))
    print(text)
    if arguments.charts:
        sys.path.insert(0, str(ROOT / "bench"))
        import charts
        for name in charts.write(charts.load(WORK / "results.json"), arguments.charts):
            log(f"chart: {Path(arguments.charts) / name}")


if __name__ == "__main__":
    main()
