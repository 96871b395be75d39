-- meetline_append's statements take parameters (the arrays, each append's count), so PostgreSQL's
-- plan cache re-planned its INSERT … SELECT FROM generate_series(1, count) for every append of
-- every call: the generic plan's estimate (1,000 rows from generate_series) never beat the custom
-- plan's, and planning cost more than the insert itself. Measured with 1,000 calls of 30 appends
-- on one connection: 2.6 s with custom plans, 0.8 s with the generic plan (docs/benchmarks.md,
-- issue 10). The statements are simple index lookups and one insert; the generic plan is the
-- right one whatever the counts.
ALTER FUNCTION meetline_append(bigint, text, double precision, text[], bigint[], int[], uuid[],
    text[], int[], uuid[], uuid[], uuid[], uuid[], text[], timestamptz[], text[])
    SET plan_cache_mode = force_generic_plan;
