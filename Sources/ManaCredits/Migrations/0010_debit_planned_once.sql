-- A debit plans its statements once per connection instead of with every call's values
-- (sync migration 0013 does the same for the push): every statement of credits.debit reads or
-- writes by key, which a generic plan serves with the same index. pgbench, the function alone,
-- 1,000 users, 32 clients: 3,893 → 4,240 debits a second (docs/benchmarks.md, session 35).
ALTER FUNCTION credits.debit(text, bigint, text, text, text, jsonb, text, text, text)
    SET plan_cache_mode = force_generic_plan;
