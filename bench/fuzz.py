#!/usr/bin/env python3
"""schemathesis against both OpenAPI documents (the bad-input part of the long reliability
suite): both services on a private cluster, a user, an admin and the service key; every
operation fuzzed with `not_a_server_error`, `response_schema_conformance` and
`status_code_conformance`. Exit status 1 when any check fails.

    bench/reliability            # runs this after the long chaos tests
    .bench/venv/bin/python bench/fuzz.py --release .build/release -n 100
"""
import argparse
import subprocess
import sys

import bench

CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--release", required=True, help="folder of the built binaries")
    parser.add_argument("-n", type=int, default=100, help="examples per operation")
    arguments = parser.parse_args()
    bench.WORK.mkdir(exist_ok=True)
    cluster = bench.Cluster(fsync=False)
    services = []
    failures = 0
    try:
        keys = bench.WORK / "auth"
        jwks = subprocess.check_output([f"{arguments.release}/mana-credits", "dev-keys", "--dir", str(keys)], text=True).strip()
        tokens = bench.Tokens(keys / "signing-key.json")
        common = {"JWKS_URL": jwks, "MANA_AUTH_URL": bench.ISSUER, "MEMBERSHIPS_URL": bench.memberships_stand_in()}
        credits = bench.Service(f"{arguments.release}/mana-credits", bench.CREDITS_PORT,
                                dict(common, DATABASE_URL=cluster.url("mana_credits"), SYNC_CHARGE_INTERVAL="0"))
        services.append(credits)
        sync = bench.Service(f"{arguments.release}/mana-sync", bench.SYNC_PORT,
                             dict(common, DATABASE_URL=cluster.url("mana_sync"), MANA_CREDITS_URL=f"http://127.0.0.1:{bench.CREDITS_PORT}"))
        services.append(sync)
        user, admin = tokens.mint("fuzzer"), tokens.mint("fuzz-admin", role="admin")
        cluster.sql("mana_credits", "INSERT INTO credits.sync_subscriptions (user_id, active, is_gifted, gifted_by, gifted_at) "
                                    "VALUES ('fuzzer', true, true, 'fuzz', now())")
        credits_url, sync_url = f"http://127.0.0.1:{bench.CREDITS_PORT}", f"http://127.0.0.1:{bench.SYNC_PORT}"
        runs = [
            ("mana-credits, user token + service key", credits_url,
             ["-H", f"Authorization: Bearer {user}", "-H", f"X-Service-Key: {bench.SERVICE_KEY}",
              "--exclude-path", "/api/v1/credits/purchase", "--exclude-path", "/api/v1/webhooks/stripe"]),
            ("mana-credits, admin token", credits_url, ["-H", f"Authorization: Bearer {admin}", "--include-path-regex", "admin"]),
            ("mana-sync, user token + service key", sync_url,
             ["-H", f"Authorization: Bearer {user}", "-H", f"X-Service-Key: {bench.SERVICE_KEY}",
              "--exclude-path", "/sync/{appId}/stream", "--exclude-path", "/ws", "--exclude-path", "/ws/{appId}"]),
        ]
        for name, url, options in runs:
            print(f"== schemathesis: {name}", flush=True)
            status = subprocess.run(["schemathesis", "run", f"{url}/openapi.json", "--url", url, "--checks", CHECKS,
                                     "-n", str(arguments.n)] + options).returncode
            failures += status != 0
        for service in services:
            if service.process.poll() is not None:
                print(f"{service.log.name}: the service exited", flush=True)
                failures += 1
    finally:
        for service in services:
            service.stop()
        cluster.stop()
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
