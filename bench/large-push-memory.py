#!/usr/bin/env python3
"""RSS of a running mana-sync through a burst of large pushes (docs/benchmarks.md, "Memory after large pushes").

    python3 bench/large-push-memory.py PID THREADS ROUNDS CHANGES [URL] [TOKEN_FILE]

THREADS clients each push ROUNDS batches of CHANGES inserts of about 1 KB to URL
(default http://127.0.0.1:3950/sync/rssapp) with the bearer token in TOKEN_FILE; prints
mana-sync's RSS before, right after, and 5 and 15 s after (MEMORY_TRIM_INTERVAL is 10 s).
"""
import json, threading, urllib.request, sys, time
pid = sys.argv[1]; threads = int(sys.argv[2]); rounds = int(sys.argv[3]); n = int(sys.argv[4])
url = sys.argv[5] if len(sys.argv) > 5 else 'http://127.0.0.1:3950/sync/rssapp'
token = open(sys.argv[6] if len(sys.argv) > 6 else '/tmp/keys/token').read().strip()
def rss():
    for line in open(f'/proc/{pid}/status'):
        if line.startswith('VmRSS'): return int(line.split()[1]) // 1024
def worker(t):
    for r in range(rounds):
        changes = [{"table": "notes", "id": f"t{t}-r{r}-{i}", "op": "insert", "data": {"text": "x" * 1000, "i": i}} for i in range(n)]
        body = json.dumps({"clientId": f"c{t}", "changes": changes}).encode()
        req = urllib.request.Request(url, data=body, method="POST",
              headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=300) as resp: resp.read()
print("before", rss(), "MB")
start = time.time()
ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
[t.start() for t in ts]; [t.join() for t in ts]
print("after load", rss(), "MB", f"{time.time()-start:.1f}s")
time.sleep(5); print("5 s later", rss(), "MB")
time.sleep(10); print("15 s later", rss(), "MB")
for line in open(f"/proc/{pid}/status"):
    if line.startswith("VmHWM"): print("peak (VmHWM)", int(line.split()[1]) // 1024, "MB")
