-- Pages are read in cursor order, whatever the statistics say (issue 19; docs/benchmarks.md,
-- session 42).
--
-- A page is the first p_limit changes of one (user, app) after a cursor: an ordered scan of
-- changes_pkey (or of changes_by_table for one table) reads p_limit rows and stops. But the
-- planner picks the plan from the table's statistics, and a user who was not there when
-- sync.changes was last analysed (a new user, or one whose rows came after a large load of
-- others') is estimated at a few rows: it then reads every row after the cursor through a
-- bitmap scan and sorts them. Seen in the mixed scenario run after the push benchmark: a log
-- segment estimated at 1,236 rows read 119,740 and sorted them on disk (37 MB, 1.4 s), a pull
-- took 52 ms instead of 3.8 (pg_stat_statements; auto_explain), and the scenario fell from
-- 2,767 to 1,557 requests a second with a push p95 of 438 ms.
--
-- The functions that read pages turn both off for their own statements: without bitmap scans
-- and with sorts priced out, the cheapest plan left for `ORDER BY cursor LIMIT n` on a
-- (user, app) range is the index in cursor order, whose cost is bounded by n, not by how many
-- rows follow the cursor. A merge of several sources (own rows and spaces) still sorts its
-- few candidates: where no plan avoids a sort, the pricing is the same for all of them.
-- page_json and its kin are SQL functions inlined into these callers; a SET on them would stop
-- the inlining, so the settings are on the callers.
ALTER FUNCTION sync.pull(text, text, text, bigint, text, int)
    SET enable_bitmapscan = off SET enable_sort = off;
ALTER FUNCTION sync.log_segment(text, text, bigint, int)
    SET enable_bitmapscan = off SET enable_sort = off;
ALTER FUNCTION sync.pull_spaces(text, text, text, bigint, text, int, text[])
    SET enable_bitmapscan = off SET enable_sort = off;
ALTER FUNCTION sync.push_spaces(text, text, text, text, jsonb, int, text[], bigint, int, text[], text[])
    SET enable_bitmapscan = off SET enable_sort = off;
ALTER FUNCTION sync.push_batch(text[], text[], text[], text[], jsonb, bigint[], int[])
    SET enable_bitmapscan = off SET enable_sort = off;
ALTER FUNCTION sync.push_rows(text[], text[], text[], text[], int[], bigint[], int[], text[], text[], text[], text[], text[], text[],
    text[], text[], text[], text[])
    SET enable_bitmapscan = off SET enable_sort = off;
