-- The original rows of the mana-sync import benchmark (docs/benchmarks.md): :rows rows over
-- 10,000 users and 3 apps = 30,000 (user, app) pairs, a quarter of them updates; consecutive
-- rows belong to different pairs. Used by SyncImportBenchmark and bench/import-baseline.sh.
INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, field_timestamps, client_id, created_at)
SELECT 'app' || (i % 3), 'items', 'r' || (i % 5000), 'user' || (i % 10000),
    CASE WHEN i % 4 = 1 THEN 'update' ELSE 'insert' END,
    jsonb_build_object('title', 'item ' || i, 'n', i, 'done', i % 2 = 0),
    CASE WHEN i % 4 = 1 THEN '{"title":"2024-01-01T00:00:00Z"}'::jsonb ELSE '{}'::jsonb END,
    'client' || (i % 7), timestamptz '2024-01-01 00:00:00+00' + i * interval '100 microseconds'
FROM generate_series(1, :rows) i
