#!/bin/bash
# The least SQL for `mana-sync import` (docs/benchmarks.md): the same 1,000,000 rows the
# import benchmark uses are imported, then the finished tables are stored again into a fresh
# migrated target with nothing but psql COPY (both tables at once, every index built after
# the rows, as the import's first load does). Prints the import's copy phase and the COPY time.
#
# Needs a PostgreSQL server on 127.0.0.1:$PGPORT (default 55432) that user postgres may use
# without a password, started like the tests' cluster, e.g. as the postgres user:
#   initdb -D DIR -A trust -U postgres
#   pg_ctl -D DIR -o "-p 55432 -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
#       -c full_page_writes=off -c shared_buffers=256MB -c unix_socket_directories=DIR" start
# and BIN, the release mana-sync (default .build-release/release/mana-sync). Files go to $WORK (default /tmp).
set -e
PGPORT=${PGPORT:-55432}
WORK=${WORK:-/tmp}
P="psql -h 127.0.0.1 -p $PGPORT -U postgres -q -v ON_ERROR_STOP=1"
BIN=${BIN:-.build-release/release/mana-sync}
$P -c "DROP DATABASE IF EXISTS orig" -c "DROP DATABASE IF EXISTS tgt" -c "DROP DATABASE IF EXISTS tgt2" -c "CREATE DATABASE orig" -c "CREATE DATABASE tgt" -c "CREATE DATABASE tgt2"
$P -d orig <<'SQL'
CREATE TABLE IF NOT EXISTS sync_changes (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(), app_id TEXT NOT NULL, table_name TEXT NOT NULL, record_id TEXT NOT NULL,
    user_id TEXT NOT NULL, op TEXT NOT NULL CHECK (op IN ('insert', 'update', 'delete')), data JSONB,
    field_timestamps JSONB DEFAULT '{}', client_id TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT NOW());
CREATE INDEX ON sync_changes(user_id, app_id, created_at);
CREATE INDEX ON sync_changes(table_name, record_id, created_at);
CREATE INDEX ON sync_changes(user_id, app_id, table_name, created_at);
SQL
$P -d orig -v rows=1000000 -f "$(dirname "$0")/sync-import-rows.sql" -c "ANALYZE sync_changes"
for db in tgt tgt2; do DATABASE_URL="postgresql://postgres@127.0.0.1:$PGPORT/$db?sslmode=disable" LOG_LEVEL=warning $BIN migrate >/dev/null; done
DATABASE_URL="postgresql://postgres@127.0.0.1:$PGPORT/tgt?sslmode=disable" LOG_LEVEL=warning $BIN import --from "postgresql://postgres@127.0.0.1:$PGPORT/orig?sslmode=disable" --quiet --report $WORK/baseline-report.json >/dev/null
python3 -c "import json; r=json.load(open('$WORK/baseline-report.json')); print('import: %d rows, copy phase %.1f s = %.0f rows/s' % (r['rowsRead'], r['seconds'], r['rowsPerSecond']))"
$P -d tgt -c "\copy legacy_sync.sync_changes (id, app_id, table_name, record_id, user_id, op, data, field_timestamps, client_id, created_at, space_id, late) TO '$WORK/b-legacy.copy'" \
  -c "\copy sync.changes (user_id, app_id, cursor, table_name, record_id, op, data, fields, deleted_at, client_id, received_at, event_id, extra) TO '$WORK/b-changes.copy'"
$P -d tgt2 -c "CREATE SCHEMA legacy_sync" -c "CREATE TABLE legacy_sync.sync_changes (id uuid NOT NULL, app_id text NOT NULL, table_name text NOT NULL, record_id text NOT NULL, user_id text NOT NULL, op text NOT NULL, data jsonb, field_timestamps jsonb, client_id text NOT NULL, created_at timestamptz NOT NULL, space_id text, late boolean NOT NULL DEFAULT false)"
s=$(date +%s.%N)
$P -d tgt2 -c "\copy legacy_sync.sync_changes (id, app_id, table_name, record_id, user_id, op, data, field_timestamps, client_id, created_at, space_id, late) FROM '$WORK/b-legacy.copy'" -c "ALTER TABLE legacy_sync.sync_changes ADD PRIMARY KEY (id)" &
$P -d tgt2 -c "ALTER TABLE sync.changes DROP CONSTRAINT changes_pkey" -c "DROP INDEX sync.changes_by_table" \
  -c "\copy sync.changes (user_id, app_id, cursor, table_name, record_id, op, data, fields, deleted_at, client_id, received_at, event_id, extra) FROM '$WORK/b-changes.copy'" \
  -c "SET maintenance_work_mem = '256MB'" -c "ALTER TABLE sync.changes ADD CONSTRAINT changes_pkey PRIMARY KEY (user_id, app_id, cursor)" \
  -c "CREATE INDEX changes_by_table ON sync.changes (user_id, app_id, table_name, cursor)" &
wait
e=$(date +%s.%N)
echo "least SQL (psql COPY of the same rows, both tables at once, indexes built after): $(echo "$e - $s" | bc) s"
