-- One log row can hold many runs of one rule: a bulk write (a nightly write-back of thousands of
-- records) logs every run of each rule and trigger in one row instead of a row per run (at a
-- million customers that was ~12 M rows a night, most of the write-back's time). `runs` is how many
-- runs the row holds; when it is more than one, `outcome` is a JSON array of
-- [record_id, matched, outcome, error, duration_us] in the order the runs happened, and the row's
-- own record_id and error are NULL, matched says whether any run matched and duration_us is the sum.
-- Readers expand such a row into its runs (`Store::rule_runs`).
ALTER TABLE rule_runs ADD COLUMN runs BIGINT NOT NULL DEFAULT 1;
