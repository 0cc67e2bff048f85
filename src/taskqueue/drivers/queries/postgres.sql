-- PostgreSQL queries. Every table is qualified with `{schema}` (formatted in once per driver), so
-- the same text runs on our own connections and on a caller's connection (transactional
-- enqueue) whatever its search_path. Times are timestamptz from the server clock; durations
-- arrive as float seconds and are added with make_interval(secs => ...). `{returning}` is the
-- record column list, qualified with the alias `j`.

-- name: migration_1
-- The job table (original `job_queue` columns plus leases, results and workflow fields), the
-- dependency edges, the small coordination tables, and the indexes the hot queries use.
CREATE TABLE IF NOT EXISTS {schema}.job_queue (
    id text PRIMARY KEY,
    payload bytea NOT NULL,
    state text NOT NULL DEFAULT 'pending',
    priority integer NOT NULL DEFAULT 5,
    queue_name text NOT NULL DEFAULT 'default',
    attempts integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 3,
    timeout_seconds integer NOT NULL DEFAULT 60,
    delay_seconds double precision NOT NULL DEFAULT 0,
    dependencies text,
    tags text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    failed_at timestamptz,
    completed_at timestamptz,
    exception text,
    name text NOT NULL,
    available_at timestamptz NOT NULL,
    started_at timestamptz,
    result text,
    progress double precision,
    idempotency_key text UNIQUE,
    batch_id text,
    waiting_on integer NOT NULL DEFAULT 0,
    lease_owner text,
    lease_expires_at timestamptz,
    lease_epoch integer NOT NULL DEFAULT 0
) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
CREATE INDEX IF NOT EXISTS idx_queue_state ON {schema}.job_queue (queue_name, state);
CREATE INDEX IF NOT EXISTS idx_priority ON {schema}.job_queue (priority);
CREATE INDEX IF NOT EXISTS idx_created_at ON {schema}.job_queue (created_at);
CREATE INDEX IF NOT EXISTS idx_state ON {schema}.job_queue (state);
CREATE INDEX IF NOT EXISTS idx_ready
    ON {schema}.job_queue (queue_name, priority DESC, available_at, id)
    WHERE state IN ('pending', 'retrying') AND waiting_on = 0;
CREATE INDEX IF NOT EXISTS idx_due ON {schema}.job_queue (queue_name, available_at)
    WHERE state IN ('pending', 'retrying') AND waiting_on = 0;
CREATE INDEX IF NOT EXISTS idx_lease ON {schema}.job_queue (lease_expires_at)
    WHERE state = 'processing';
CREATE INDEX IF NOT EXISTS idx_batch ON {schema}.job_queue (batch_id)
    WHERE batch_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS {schema}.job_dependencies (
    job_id text NOT NULL,
    depends_on text NOT NULL,
    PRIMARY KEY (depends_on, job_id)
);
CREATE INDEX IF NOT EXISTS idx_dependencies_job ON {schema}.job_dependencies (job_id);
CREATE TABLE IF NOT EXISTS {schema}.taskqueue_locks (
    name text PRIMARY KEY,
    owner text NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS {schema}.taskqueue_counters (
    key text PRIMARY KEY,
    value bigint NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS {schema}.taskqueue_registry (
    kind text NOT NULL,
    key text NOT NULL,
    data text NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (kind, key)
);

-- name: migration_2
-- Idempotency modes (how long a key blocks duplicates; a "window" key expires at
-- idempotency_expires_at) and per-edge dependency satisfaction, so an edge releases its
-- dependent once. Edges of an existing store are satisfied when their dependency is completed or
-- gone, as a push would have marked them.
ALTER TABLE {schema}.job_queue
    ADD COLUMN IF NOT EXISTS idempotency_mode text NOT NULL DEFAULT 'exists',
    ADD COLUMN IF NOT EXISTS idempotency_window double precision NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS idempotency_expires_at timestamptz;
ALTER TABLE {schema}.job_dependencies
    ADD COLUMN IF NOT EXISTS satisfied boolean NOT NULL DEFAULT false;
UPDATE {schema}.job_dependencies d SET satisfied = true
WHERE NOT EXISTS (SELECT 1 FROM {schema}.job_queue p
                  WHERE p.id = d.depends_on AND p.state <> 'completed');

-- name: migration_3
-- Listing jobs by state (and queue), newest first, without sorting: the dashboard's pages.
CREATE INDEX IF NOT EXISTS idx_state_id ON {schema}.job_queue (state, id);
CREATE INDEX IF NOT EXISTS idx_queue_state_id ON {schema}.job_queue (queue_name, state, id);

-- name: migration_4
-- Cheaper state changes. A state change moves the row to a new version, and each version has
-- an entry in every index whose predicate it meets, so every reserve and every completion
-- wrote 9 and 8 index entries. Gone: (state) and (queue_name, state), prefixes of migration
-- 3's indexes; (priority) and (created_at), which no query uses. The listing indexes leave out
-- `processing` rows (few by construction: what workers hold, found through idx_lease), so a
-- job enters them when it settles, not when it is reserved. idx_due gets a predicate that
-- `reserve` cannot meet (`available_at > '-infinity'` is not implied by `available_at <=
-- now()`), so the planner cannot pick it for `reserve` and sort the whole backlog when its
-- estimates are off (a young table); only `next_due` says it, literally.
DROP INDEX IF EXISTS {schema}.idx_state;
DROP INDEX IF EXISTS {schema}.idx_queue_state;
DROP INDEX IF EXISTS {schema}.idx_priority;
DROP INDEX IF EXISTS {schema}.idx_created_at;
DROP INDEX IF EXISTS {schema}.idx_state_id;
DROP INDEX IF EXISTS {schema}.idx_queue_state_id;
DROP INDEX IF EXISTS {schema}.idx_due;
CREATE INDEX IF NOT EXISTS idx_state_id ON {schema}.job_queue (state, id)
    WHERE state <> 'processing';
CREATE INDEX IF NOT EXISTS idx_queue_state_id ON {schema}.job_queue (queue_name, state, id)
    WHERE state <> 'processing';
CREATE INDEX IF NOT EXISTS idx_due ON {schema}.job_queue (queue_name, available_at)
    WHERE state IN ('pending', 'retrying') AND waiting_on = 0
      AND available_at > '-infinity';

-- name: migration_5
-- The attempt history: a JSON array, one entry per failed or lost attempt (and the final
-- completion after one), appended by the settle statements (see `fail`).
ALTER TABLE {schema}.job_queue ADD COLUMN IF NOT EXISTS attempt_history jsonb;

-- name: migration_6
-- Cheaper enqueue: the unique index on idempotency_key holds only the jobs that have a key
-- (most have none, and each of them still cost an index entry and its WAL record); the times
-- of a new job default to the server's now(), so `copy_jobs` can leave them out.
CREATE UNIQUE INDEX IF NOT EXISTS idx_idempotency_key ON {schema}.job_queue (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
ALTER TABLE {schema}.job_queue DROP CONSTRAINT IF EXISTS job_queue_idempotency_key_key;
ALTER TABLE {schema}.job_queue ALTER COLUMN created_at SET DEFAULT now(),
    ALTER COLUMN updated_at SET DEFAULT now(), ALTER COLUMN available_at SET DEFAULT now();

-- name: migration_7
-- Dashboard searches that stay fast at a million jobs: `tags LIKE '%"x"%'` and
-- `exception LIKE '%text%'` (a tag, an error text) are read through trigram GIN indexes
-- (pg_trgm), so a rare tag or word is found without scanning the table. Partial: jobs without
-- tags, and jobs without an exception (most, once completed), have no entry and cost nothing.
-- pg_trgm ships with PostgreSQL (contrib) and is a trusted extension (a database owner may
-- create it); where it cannot be created the indexes are left out and those searches scan.
DO $$
BEGIN
    BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
    EXCEPTION WHEN OTHERS THEN
        -- not installed, not allowed, or created by a concurrent migration of another schema
        IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
            RAISE WARNING 'taskqueue: no pg_trgm (%): tag and error searches scan', SQLERRM;
            RETURN;
        END IF;
    END;
    CREATE INDEX IF NOT EXISTS idx_tags_trgm ON {schema}.job_queue
        USING gin (tags gin_trgm_ops) WHERE tags IS NOT NULL;
    CREATE INDEX IF NOT EXISTS idx_exception_trgm ON {schema}.job_queue
        USING gin (exception gin_trgm_ops) WHERE exception IS NOT NULL;
END
$$;

-- name: migration_8
-- Counters kept as jobs change state, so `stats` reads a few rows instead of counting the table
-- (about a second at a million jobs). Every counter change is an INSERT of a delta row, never an
-- UPDATE of a shared row: workers completing jobs at once would otherwise queue on the same
-- counter row until each commits (and could deadlock on two of them). Statement-level triggers
-- with transition tables write one delta per queue, state and (for completed jobs) second of
-- completion that a statement changed (a batch of 100 completions is 2 rows), in the writing
-- transaction, whichever statement it is (COPY included). About one statement in 256 also folds
-- the deltas into the base rows, when no other transaction is folding (a try-lock): `stats`
-- sums the base rows and the few deltas since. job_completions keeps the completed jobs per
-- second of the last two minutes ("completed in the last minute"; a pruned one leaves it, as
-- on the other stores). The table is locked against writers while the existing rows are
-- counted, so none is missed or counted twice.
CREATE TABLE IF NOT EXISTS {schema}.job_counts (
    queue_name text NOT NULL,
    state text NOT NULL,
    n bigint NOT NULL,
    priority_sum bigint NOT NULL,
    PRIMARY KEY (queue_name, state)
) WITH (fillfactor = 50);
CREATE TABLE IF NOT EXISTS {schema}.job_completions (
    second bigint NOT NULL,
    queue_name text NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (second, queue_name)
) WITH (fillfactor = 50);
CREATE TABLE IF NOT EXISTS {schema}.job_count_deltas (
    queue_name text NOT NULL,
    state text NOT NULL,
    second bigint,
    n bigint NOT NULL,
    priority_sum bigint NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000);
CREATE OR REPLACE FUNCTION {schema}.taskqueue_fold_counts() RETURNS void
LANGUAGE sql AS $$
    WITH moved AS (DELETE FROM {schema}.job_count_deltas RETURNING *),
    counts AS (
        INSERT INTO {schema}.job_counts AS c (queue_name, state, n, priority_sum)
        SELECT queue_name, state, sum(n), sum(priority_sum) FROM moved
        GROUP BY queue_name, state ORDER BY queue_name, state
        ON CONFLICT (queue_name, state) DO UPDATE
        SET n = c.n + excluded.n, priority_sum = c.priority_sum + excluded.priority_sum)
    INSERT INTO {schema}.job_completions AS c (second, queue_name, n)
    SELECT second, queue_name, sum(n) FROM moved
    WHERE state = 'completed' AND second >= extract(epoch FROM now())::bigint - 120
    GROUP BY second, queue_name ORDER BY second, queue_name
    ON CONFLICT (second, queue_name) DO UPDATE SET n = c.n + excluded.n;
    DELETE FROM {schema}.job_completions
    WHERE second < extract(epoch FROM now())::bigint - 120;
$$;
CREATE OR REPLACE FUNCTION {schema}.taskqueue_count_jobs() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO {schema}.job_count_deltas (queue_name, state, second, n, priority_sum)
        SELECT queue_name, state, CASE WHEN state = 'completed'
            THEN floor(extract(epoch FROM completed_at))::bigint END, count(*), sum(priority)
        FROM new_rows GROUP BY 1, 2, 3;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO {schema}.job_count_deltas (queue_name, state, second, n, priority_sum)
        SELECT queue_name, state, CASE WHEN state = 'completed'
            THEN floor(extract(epoch FROM completed_at))::bigint END, -count(*), -sum(priority)
        FROM old_rows GROUP BY 1, 2, 3;
    ELSE
        INSERT INTO {schema}.job_count_deltas (queue_name, state, second, n, priority_sum)
        SELECT queue_name, state, second, sum(n), sum(p) FROM (
            SELECT queue_name, state, completed_at, 1 AS n, priority AS p FROM new_rows
            UNION ALL
            SELECT queue_name, state, completed_at, -1, -priority FROM old_rows) AS d,
            LATERAL (SELECT CASE WHEN state = 'completed'
                THEN floor(extract(epoch FROM completed_at))::bigint END AS second) AS s
        GROUP BY queue_name, state, second HAVING sum(n) <> 0 OR sum(p) <> 0;
    END IF;
    IF random() < 1.0 / 256 AND pg_try_advisory_xact_lock(hashtext('taskqueue fold {schema}'))
    THEN
        PERFORM {schema}.taskqueue_fold_counts();
    END IF;
    RETURN NULL;
END $$;
LOCK TABLE {schema}.job_queue IN SHARE ROW EXCLUSIVE MODE;
DROP TRIGGER IF EXISTS taskqueue_count_insert ON {schema}.job_queue;
DROP TRIGGER IF EXISTS taskqueue_count_update ON {schema}.job_queue;
DROP TRIGGER IF EXISTS taskqueue_count_delete ON {schema}.job_queue;
CREATE TRIGGER taskqueue_count_insert AFTER INSERT ON {schema}.job_queue
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.taskqueue_count_jobs();
CREATE TRIGGER taskqueue_count_update AFTER UPDATE ON {schema}.job_queue
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.taskqueue_count_jobs();
CREATE TRIGGER taskqueue_count_delete AFTER DELETE ON {schema}.job_queue
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.taskqueue_count_jobs();
DELETE FROM {schema}.job_counts;
DELETE FROM {schema}.job_count_deltas;
INSERT INTO {schema}.job_counts (queue_name, state, n, priority_sum)
SELECT queue_name, state, count(*), sum(priority) FROM {schema}.job_queue
GROUP BY queue_name, state;
DELETE FROM {schema}.job_completions;
INSERT INTO {schema}.job_completions (second, queue_name, n)
SELECT floor(extract(epoch FROM completed_at))::bigint, queue_name, count(*)
FROM {schema}.job_queue
WHERE state = 'completed' AND completed_at >= now() - interval '2 minutes'
GROUP BY 1, 2;

-- name: migration_9
-- The dashboard's Scheduled and Retrying views (`due`): the jobs waiting for a due time, by
-- due time. A pending job is in idx_scheduled only while it is due later than its last change
-- (pushed with a delay or an eta, snoozed): a job pushed, retried or handed back due at once
-- meets neither predicate, so those writes add no entry. `due` repeats the predicates.
CREATE INDEX IF NOT EXISTS idx_scheduled ON {schema}.job_queue (available_at, id)
    WHERE state = 'pending' AND available_at > updated_at;
CREATE INDEX IF NOT EXISTS idx_retrying ON {schema}.job_queue (available_at, id)
    WHERE state = 'retrying';

-- name: migration_10
-- The failures grouped by error (`error_texts`) without reading the failed jobs' rows: a digest
-- of the exception text (its md5 as a uuid: 16 bytes, the same for equal texts) in a column of
-- its own, and the failed jobs' digests with the other columns the grouping reads in a partial
-- index. A text itself cannot go in an index (PostgreSQL caps an entry near 2.7 kB; a traceback
-- is longer). Triggers keep the digest on every write of `exception`, whichever statement
-- writes it (settling, recovery, cancels, restores, COPY, bulk statements): an insert with an
-- exception, and an update that lists `exception` and changes it. The WHEN clauses are read
-- without calling the function, so the many writes that set no exception (a push, a reserve, a
-- completion clearing none) pay almost nothing. The existing rows that carry an exception get
-- their digest here: one UPDATE of those rows (failed, retrying and cancelled jobs; completed
-- ones have none), a new row version each (about 10% of a busy store; a few seconds per
-- 100,000 rows), under the migration's lock; vacuum makes them all-visible again, so the
-- grouping reads the index alone.
ALTER TABLE {schema}.job_queue ADD COLUMN IF NOT EXISTS exception_digest uuid;
CREATE OR REPLACE FUNCTION {schema}.taskqueue_exception_digest() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.exception_digest := md5(NEW.exception)::uuid;
    RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS job_exception_digest_insert ON {schema}.job_queue;
CREATE TRIGGER job_exception_digest_insert BEFORE INSERT ON {schema}.job_queue
    FOR EACH ROW WHEN (NEW.exception IS NOT NULL)
    EXECUTE FUNCTION {schema}.taskqueue_exception_digest();
DROP TRIGGER IF EXISTS job_exception_digest_update ON {schema}.job_queue;
CREATE TRIGGER job_exception_digest_update BEFORE UPDATE OF exception ON {schema}.job_queue
    FOR EACH ROW WHEN (NEW.exception IS DISTINCT FROM OLD.exception
                       OR (NEW.exception IS NOT NULL AND NEW.exception_digest IS NULL))
    EXECUTE FUNCTION {schema}.taskqueue_exception_digest();
UPDATE {schema}.job_queue SET exception_digest = md5(exception)::uuid
WHERE exception IS NOT NULL AND exception_digest IS NULL;
CREATE INDEX IF NOT EXISTS idx_failed_digest
    ON {schema}.job_queue (exception_digest, name, queue_name, id)
    INCLUDE (failed_at, updated_at) WHERE state = 'failed';

-- name: migration_11
-- A list sorted by priority over a large filter (`sorted_search` with `within`: the newest
-- 10,000 matches, then the top of them by priority) reads the listing indexes alone: they
-- carry the priority. Every update of a job is already a new version with an entry in these
-- indexes (idx_scheduled's predicate reads updated_at, which every write changes), so the
-- extra 4 bytes per entry are all it costs; before, each of the 10,000 matches was read from
-- the table for its priority (about 190 ms at a million jobs). Building the two indexes reads
-- the table once each (seconds per million jobs, writes wait meanwhile).
CREATE INDEX IF NOT EXISTS idx_state_id_p ON {schema}.job_queue (state, id) INCLUDE (priority)
    WHERE state <> 'processing';
DROP INDEX IF EXISTS {schema}.idx_state_id;
ALTER INDEX {schema}.idx_state_id_p RENAME TO idx_state_id;
CREATE INDEX IF NOT EXISTS idx_queue_state_id_p ON {schema}.job_queue (queue_name, state, id)
    INCLUDE (priority) WHERE state <> 'processing';
DROP INDEX IF EXISTS {schema}.idx_queue_state_id;
ALTER INDEX {schema}.idx_queue_state_id_p RENAME TO idx_queue_state_id;

-- name: migration_12
-- Cheaper enqueue: idx_due goes. It held every ready job by (queue, due time) for `next_due`
-- and `stats_gauges` alone, so every push (and every retry or hand-back) paid an index entry
-- and its WAL record (about a tenth of a COPY's server time) to make an idle worker's one
-- probe per wait cheap. Those queries now read the earliest due time from idx_ready, one probe
-- per distinct priority among a queue's ready jobs (the first entry of each priority is its
-- earliest due: see `next_due`), a few probes as jobs are usually pushed.
DROP INDEX IF EXISTS {schema}.idx_due;

-- name: migration_13
-- Pruning reads the finished jobs past their retention from two indexes that hold only them,
-- by the time they finished, instead of every finished row (idx_state_id's
-- completed, failed and cancelled entries, each row then fetched to compare its time). A job
-- enters one when it finishes: a push, a reservation, a retry or a hand-back writes no entry
-- in either.
CREATE INDEX IF NOT EXISTS idx_done_completed ON {schema}.job_queue (completed_at)
    WHERE state = 'completed';
CREATE INDEX IF NOT EXISTS idx_done_failed
    ON {schema}.job_queue ((coalesce(failed_at, updated_at)))
    WHERE state IN ('failed', 'cancelled');

-- name: migrations_table
CREATE TABLE IF NOT EXISTS {schema}.taskqueue_migrations (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: insert_jobs
-- Many new jobs in one statement, one array per column. They share one timestamp; ORDER BY
-- keeps the batch order, so of two jobs with the same idempotency key the first one wins.
-- Jobs with keys get `skip_duplicate_keys` appended; without keys no conflict can happen, and
-- a plain INSERT writes one WAL record less per row than a speculative one.
INSERT INTO {schema}.job_queue (id, queue_name, name, payload, priority, max_attempts,
    timeout_seconds, delay_seconds, available_at, dependencies, tags, created_at, updated_at,
    idempotency_key, batch_id, idempotency_mode, idempotency_window)
SELECT n.id, n.queue_name, n.name, n.payload, n.priority, n.max_attempts, n.timeout_seconds,
    n.delay_seconds, t.now + make_interval(secs => n.delay_seconds), n.dependencies, n.tags,
    t.now, t.now, n.idempotency_key, n.batch_id, n.idempotency_mode, n.idempotency_window
FROM unnest(%s::text[], %s::text[], %s::text[], %s::bytea[], %s::int[], %s::int[], %s::int[],
            %s::float8[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
            %s::float8[])
    WITH ORDINALITY AS n(id, queue_name, name, payload, priority, max_attempts, timeout_seconds,
                         delay_seconds, dependencies, tags, idempotency_key, batch_id,
                         idempotency_mode, idempotency_window, ord)
CROSS JOIN (SELECT clock_timestamp() AS now) t
ORDER BY n.ord;

-- name: skip_duplicate_keys
-- Appended to `insert_jobs` when jobs have idempotency keys: a taken key skips the row.
ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING;

-- name: insert_job
-- One job without key or dependencies (the common `push`) and its NOTIFY, in one statement
-- with plain parameters: cheaper to send than `insert_jobs`' arrays of one.
WITH ins AS (
    INSERT INTO {schema}.job_queue (id, queue_name, name, payload, priority, max_attempts,
        timeout_seconds, delay_seconds, available_at, tags, created_at, updated_at, batch_id,
        idempotency_mode, idempotency_window)
    SELECT %s, %s, %s, %s, %s, %s, %s, %s, t.now + make_interval(secs => %s), %s, t.now,
        t.now, %s, %s, %s
    FROM (SELECT clock_timestamp() AS now) t)
SELECT pg_notify(%s, %s);

-- name: copy_jobs
-- A large batch of plain jobs due now (no key, no dependency, no delay) on our own
-- connection: COPY writes the heap a page at a time and parses no arrays, about twice as fast
-- as `insert_jobs` for 1,000 jobs and a fifth of the client's work. The times are the
-- columns' defaults (the server's now(), one for the whole batch). Binary: the payload goes
-- as its bytes (text COPY doubles it into hex and the server decodes it), numbers without
-- formatting and parsing. The driver formats the rows itself (`_postgres_copy.py`), in this
-- column order: each job's own id and payload first, then the columns a batch shares.
COPY {schema}.job_queue (id, payload, queue_name, name, priority, max_attempts,
    timeout_seconds, tags, batch_id, idempotency_mode, idempotency_window)
FROM STDIN (FORMAT BINARY);

-- name: expire_idempotency_keys
-- Keys whose "window" after finishing has passed no longer block a new job. The caller's
-- transaction may be old, so this reads the wall clock rather than its start time.
UPDATE {schema}.job_queue SET idempotency_key = NULL
WHERE idempotency_key = ANY(%s) AND idempotency_expires_at <= clock_timestamp();

-- name: insert_dependencies
-- Edges (job, dependency) for the jobs that were really inserted (a job skipped for its
-- idempotency key has no row, so the join drops its edges).
INSERT INTO {schema}.job_dependencies (job_id, depends_on)
SELECT e.job_id, e.depends_on
FROM unnest(%s::text[], %s::text[]) AS e(job_id, depends_on)
JOIN {schema}.job_queue j ON j.id = e.job_id
ON CONFLICT DO NOTHING;

-- name: count_waiting
-- Mark the new edges to completed (or missing) dependencies satisfied, and set each job's
-- waiting_on to the rest. FOR SHARE locks the dependency rows until we commit, which closes
-- the race with a concurrent `complete`:
-- * if the dependency's completion committed first, our lock waits for it and returns the row
--   as it is now (completed, so the edge is satisfied here);
-- * if we lock first, the completing UPDATE waits for our commit, and its next statement
--   (release_dependents, a fresh snapshot) sees our unsatisfied edge and releases it.
-- FOR KEY SHARE would not do: it does not conflict with an UPDATE of non-key columns.
-- `parents` (every dependency named by the new edges) bounds the lookup to those rows; without
-- it the planner may hash the whole job table.
WITH parents AS (
    SELECT p.id, p.state FROM {schema}.job_queue p
    WHERE p.id = ANY(%(parents)s::text[])
      AND p.id IN (SELECT depends_on FROM {schema}.job_dependencies WHERE job_id = ANY(%(ids)s))
    FOR SHARE),
met AS (
    UPDATE {schema}.job_dependencies d SET satisfied = true
    WHERE d.job_id = ANY(%(ids)s) AND NOT d.satisfied
      AND NOT EXISTS (SELECT 1 FROM parents p
                      WHERE p.id = d.depends_on AND p.state <> 'completed'))
UPDATE {schema}.job_queue c SET waiting_on = (
    SELECT count(*) FROM {schema}.job_dependencies d JOIN parents p ON p.id = d.depends_on
    WHERE d.job_id = c.id AND NOT d.satisfied AND p.state <> 'completed')
WHERE c.id = ANY(%(ids)s);

-- name: ids_by_keys
SELECT idempotency_key, id FROM {schema}.job_queue WHERE idempotency_key = ANY(%s);

-- name: notify
-- One wake-up per distinct queue; delivered to listeners when the transaction commits.
SELECT pg_notify(%s, q) FROM unnest(%s::text[]) AS q;

-- name: reserve
-- Claim the best ready jobs in one statement: highest priority, then oldest due, then oldest
-- id. SKIP LOCKED lets concurrent workers pass over rows another worker is claiming. Each
-- queue is read through idx_ready in its order (queue_name = ANY(...) would lose that order
-- and scan); with several queues the extra rows locked here are freed at once on commit.
-- Its commit waits for the WAL flush, as every write of ours does. (It once did not: a crash
-- could then lose a reservation the worker had already been told of, the job went back to
-- pending with its old epoch, and the next reservation handed out that same epoch again, so
-- the first worker's heartbeats and completion were accepted as the new owner's.)
UPDATE {schema}.job_queue j
SET state = 'processing', attempts = j.attempts + 1, lease_owner = %(worker)s,
    lease_expires_at = now() + make_interval(secs => %(lease)s), lease_epoch = j.lease_epoch + 1,
    started_at = now(), updated_at = now(),
    idempotency_key = CASE WHEN j.idempotency_mode IN ('started', 'debounce') THEN NULL
        ELSE j.idempotency_key END
FROM (SELECT c.id FROM unnest(%(queues)s::text[]) AS q(name)
      CROSS JOIN LATERAL (
          SELECT id, priority, available_at FROM {schema}.job_queue
          WHERE queue_name = q.name AND state IN ('pending', 'retrying') AND waiting_on = 0
            AND available_at <= now()
          ORDER BY priority DESC, available_at, id
          LIMIT %(limit)s
          FOR UPDATE SKIP LOCKED) AS c
      ORDER BY c.priority DESC, c.available_at, c.id
      LIMIT %(limit)s) AS picked
WHERE j.id = picked.id
RETURNING {returning};

-- name: reserve_job
-- Claim one given job if it is ready now, with the effects of `reserve`. A row another
-- transaction has locked is passed over, as `reserve` would.
UPDATE {schema}.job_queue j
SET state = 'processing', attempts = j.attempts + 1, lease_owner = %(worker)s,
    lease_expires_at = now() + make_interval(secs => %(lease)s), lease_epoch = j.lease_epoch + 1,
    started_at = now(), updated_at = now(),
    idempotency_key = CASE WHEN j.idempotency_mode IN ('started', 'debounce') THEN NULL
        ELSE j.idempotency_key END
FROM (SELECT id FROM {schema}.job_queue
      WHERE id = %(id)s AND state IN ('pending', 'retrying') AND waiting_on = 0
        AND available_at <= now()
      FOR UPDATE SKIP LOCKED) AS picked
WHERE j.id = picked.id
RETURNING {returning};

-- name: replace_payload
-- New arguments and due time for a job nobody has taken yet (debounced unique jobs).
UPDATE {schema}.job_queue
SET payload = %s, available_at = now() + make_interval(secs => %s), delay_seconds = %s,
    updated_at = now()
WHERE id = %s AND state = 'pending';

-- name: extend_leases
-- `COLLATE "C"`: see complete_many.
UPDATE {schema}.job_queue j
SET lease_expires_at = now() + make_interval(secs => %s), updated_at = now()
FROM unnest(%s::text[], %s::int[]) AS t(id, epoch)
WHERE j.id = t.id AND j.lease_epoch = t.epoch AND j.state = 'processing' COLLATE "C"
RETURNING j.id;

-- name: lease_states
SELECT id, state, lease_epoch FROM {schema}.job_queue WHERE id = ANY(%s);

-- name: complete
UPDATE {schema}.job_queue
SET state = 'completed', result = %s, completed_at = now(), updated_at = now(), progress = 100,
    lease_owner = NULL, lease_expires_at = NULL, exception = NULL,
    idempotency_key = CASE WHEN idempotency_mode = 'finished' THEN NULL
        ELSE idempotency_key END,
    idempotency_expires_at = CASE WHEN idempotency_mode = 'window'
        THEN now() + make_interval(secs => idempotency_window) ELSE idempotency_expires_at END
WHERE id = %s AND lease_epoch = %s AND state = 'processing';

-- name: complete_many
-- A batch of completions in one statement, each accepted only under its own lease epoch.
-- Sorted input ids make concurrent batches lock their rows in one order; the arrays go in
-- binary (%b), 2-3x cheaper to build than text for 100 items. The exception of an earlier
-- attempt (or a postponement's reason) is cleared; a history that exists (the job failed
-- before) gets its closing entry, none is started. The state test says
-- `COLLATE "C"` (the same equality: the default collation is deterministic) so that it does
-- not imply idx_lease's predicate: otherwise the planner reads every entry of idx_lease,
-- dead ones included (one per reservation since the last vacuum), and hash-joins, where 100
-- primary-key probes are 2-3x faster.
UPDATE {schema}.job_queue j
SET state = 'completed', result = t.result, completed_at = now(), updated_at = now(),
    progress = 100, lease_owner = NULL, lease_expires_at = NULL, exception = NULL,
    attempt_history = CASE WHEN j.attempt_history IS NOT NULL
        THEN j.attempt_history || jsonb_build_object('attempt', j.attempts, 'worker', j.lease_owner,
        'started_at', extract(epoch FROM j.started_at), 'ended_at', extract(epoch FROM now()),
        'outcome', 'completed', 'error', NULL) END,
    idempotency_key = CASE WHEN j.idempotency_mode = 'finished' THEN NULL
        ELSE j.idempotency_key END,
    idempotency_expires_at = CASE WHEN j.idempotency_mode = 'window'
        THEN now() + make_interval(secs => j.idempotency_window)
        ELSE j.idempotency_expires_at END
FROM unnest(%b::text[], %b::int[], %b::text[]) AS t(id, epoch, result)
WHERE j.id = t.id AND j.lease_epoch = t.epoch AND j.state = 'processing' COLLATE "C"
RETURNING j.id, j.lease_epoch;

-- name: release_dependents_many
-- `release_dependents` for every completed job among the given ids, as one statement sent
-- right after `complete_many` in the same transaction (its own snapshot: see count_waiting).
-- Edges already satisfied are not counted again, so a job completed earlier (by this batch's
-- stale tokens or anyone) releases nothing twice; a child of several jobs in the batch loses
-- one wait per edge. With no edges it is a few index probes that find nothing. Both sides
-- of the join are bounded by the batch's ids (`COLLATE "C"` keeps the planner from reading
-- every completed job through idx_state_id instead: see complete_many). A job that waits on
-- nothing now wakes idle workers of its queue, as a push does (one NOTIFY per queue: equal
-- notifications of one transaction are delivered once).
WITH edges AS (
    UPDATE {schema}.job_dependencies d SET satisfied = true
    FROM {schema}.job_queue p
    WHERE d.depends_on = ANY(%(ids)b::text[]) AND NOT d.satisfied
      AND p.id = ANY(%(ids)b::text[]) AND p.id = d.depends_on
      AND p.state = 'completed' COLLATE "C"
    RETURNING d.job_id),
released AS (
    UPDATE {schema}.job_queue j SET waiting_on = greatest(j.waiting_on - e.n, 0)
    FROM (SELECT job_id, count(*) AS n FROM edges GROUP BY job_id) e
    WHERE j.id = e.job_id AND j.waiting_on > 0
    RETURNING j.queue_name, j.waiting_on)
SELECT pg_notify(%(channel)s, queue_name) FROM released WHERE waiting_on = 0;

-- name: release_dependents
-- A completed (or, by policy, failed) job unblocks the jobs that wait on it, once per edge:
-- an edge already satisfied is not counted again. Must run as its own statement after
-- `complete` (not in a CTE with it) so it takes a snapshot after any push it waited for.
-- A job that waits on nothing now wakes idle workers of its queue (release_dependents_many).
WITH edges AS (
    UPDATE {schema}.job_dependencies SET satisfied = true
    WHERE depends_on = %s AND NOT satisfied
    RETURNING job_id),
released AS (
    UPDATE {schema}.job_queue j SET waiting_on = j.waiting_on - 1
    FROM edges e
    WHERE j.id = e.job_id AND j.waiting_on > 0
    RETURNING j.id, j.waiting_on, j.queue_name)
SELECT id, waiting_on, CASE WHEN waiting_on = 0 THEN pg_notify(%s, queue_name) END
FROM released;

-- name: cancel_dependents
-- A failed or cancelled job takes its waiting dependents down with it.
UPDATE {schema}.job_queue SET state = 'cancelled', exception = %s, updated_at = now(),
    idempotency_key = CASE WHEN idempotency_mode = 'finished' THEN NULL
        ELSE idempotency_key END,
    idempotency_expires_at = CASE WHEN idempotency_mode = 'window'
        THEN now() + make_interval(secs => idempotency_window) ELSE idempotency_expires_at END
WHERE state = 'pending'
  AND id IN (SELECT job_id FROM {schema}.job_dependencies WHERE depends_on = %s)
RETURNING id;

-- name: fail
-- To `retrying` (due after the delay) or, when dead-lettered, to `failed` (which finishes it).
UPDATE {schema}.job_queue
SET state = %(state)s, exception = %(error)s,
    available_at = now() + make_interval(secs => %(delay)s),
    failed_at = CASE WHEN %(dead)s THEN now() END, updated_at = now(),
    lease_owner = NULL, lease_expires_at = NULL,
    idempotency_key = CASE WHEN idempotency_mode = 'finished' AND %(dead)s THEN NULL
        ELSE idempotency_key END,
    idempotency_expires_at = CASE WHEN idempotency_mode = 'window' AND %(dead)s
        THEN now() + make_interval(secs => idempotency_window) ELSE idempotency_expires_at END,
    attempt_history = coalesce(attempt_history, '[]'::jsonb)
        || jsonb_build_object('attempt', attempts, 'worker', lease_owner,
        'started_at', extract(epoch FROM started_at), 'ended_at', extract(epoch FROM now()),
        'outcome', %(state)s::text, 'error', %(clipped)s::text)
WHERE id = %(id)s AND lease_epoch = %(epoch)s AND state = 'processing';

-- name: release
-- Hand a job back unrun: the attempt it used is refunded; a reason replaces the exception.
UPDATE {schema}.job_queue
SET state = 'pending', attempts = greatest(attempts - 1, 0),
    available_at = now() + make_interval(secs => %s), updated_at = now(),
    exception = coalesce(%s, exception), lease_owner = NULL, lease_expires_at = NULL
WHERE id = %s AND lease_epoch = %s AND state = 'processing';

-- name: set_progress
UPDATE {schema}.job_queue SET progress = %s, updated_at = now()
WHERE id = %s AND lease_epoch = %s AND state = 'processing';

-- name: recover_expired
-- Leases that ran out: retry if attempts remain, else dead-letter.
UPDATE {schema}.job_queue
SET state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'retrying' END,
    failed_at = CASE WHEN attempts >= max_attempts THEN now() ELSE failed_at END,
    exception = 'LeaseExpired: worker ' || coalesce(lease_owner, '?')
        || ' stopped renewing its lease (attempt ' || attempts || ' of ' || max_attempts || ')',
    available_at = now(), updated_at = now(), lease_owner = NULL, lease_expires_at = NULL,
    idempotency_key = CASE WHEN idempotency_mode = 'finished' AND attempts >= max_attempts
        THEN NULL ELSE idempotency_key END,
    idempotency_expires_at = CASE WHEN idempotency_mode = 'window' AND attempts >= max_attempts
        THEN now() + make_interval(secs => idempotency_window) ELSE idempotency_expires_at END,
    attempt_history = coalesce(attempt_history, '[]'::jsonb)
        || jsonb_build_object('attempt', attempts, 'worker', lease_owner,
        'started_at', extract(epoch FROM started_at), 'ended_at', extract(epoch FROM now()),
        'outcome', CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'retrying' END,
        'error', 'LeaseExpired: worker ' || coalesce(lease_owner, '?')
            || ' stopped renewing its lease (attempt ' || attempts || ' of ' || max_attempts || ')')
WHERE state = 'processing' AND lease_expires_at < now()
RETURNING id;

-- name: recover_worker
-- A worker process is known to be dead: the jobs it had started (all it held when the list is
-- NULL) move at once as an expired lease would, with the cause its supervisor saw; the rest
-- (reserved, never started) go back unrun with their attempt refunded. State and owner fence
-- it. Two statements of one transaction, in this order.
UPDATE {schema}.job_queue
SET state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'retrying' END,
    failed_at = CASE WHEN attempts >= max_attempts THEN now() ELSE failed_at END,
    exception = %(reason)s || ' (attempt ' || attempts || ' of ' || max_attempts || ')',
    available_at = now(), updated_at = now(), lease_owner = NULL, lease_expires_at = NULL,
    idempotency_key = CASE WHEN idempotency_mode = 'finished' AND attempts >= max_attempts
        THEN NULL ELSE idempotency_key END,
    idempotency_expires_at = CASE WHEN idempotency_mode = 'window' AND attempts >= max_attempts
        THEN now() + make_interval(secs => idempotency_window) ELSE idempotency_expires_at END,
    attempt_history = coalesce(attempt_history, '[]'::jsonb)
        || jsonb_build_object('attempt', attempts, 'worker', lease_owner,
        'started_at', extract(epoch FROM started_at), 'ended_at', extract(epoch FROM now()),
        'outcome', CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'retrying' END,
        'error', %(reason)s || ' (attempt ' || attempts || ' of ' || max_attempts || ')')
WHERE state = 'processing' AND lease_owner = %(worker)s
  AND (%(started)s::text[] IS NULL OR id = ANY(%(started)s::text[]))
RETURNING id;

-- name: release_worker
UPDATE {schema}.job_queue
SET state = 'pending', attempts = greatest(attempts - 1, 0), available_at = now(),
    updated_at = now(), lease_owner = NULL, lease_expires_at = NULL
WHERE state = 'processing' AND lease_owner = %(worker)s
RETURNING id;

-- name: next_due
-- Seconds until the next waiting job of these queues falls due (negative: due already), read
-- from idx_ready, whose order within a queue is (priority DESC, available_at, id): the first
-- entry of each priority is that priority's earliest due time, so the earliest of the queue is
-- the least of those. A loose index scan finds them: the queue's first entry, then the first
-- entry of a lower priority than the last one found, and so on, one index probe per distinct
-- priority (0-1000; usually a handful). `stats_gauges` repeats it.
WITH RECURSIVE due(name, priority, available_at) AS (
    SELECT q.name, f.priority, f.available_at
    FROM unnest(%s::text[]) AS q(name)
    CROSS JOIN LATERAL (
        SELECT priority, available_at FROM {schema}.job_queue
        WHERE queue_name = q.name AND state IN ('pending', 'retrying') AND waiting_on = 0
        ORDER BY priority DESC, available_at, id LIMIT 1) AS f
    UNION ALL
    SELECT d.name, f.priority, f.available_at
    FROM due AS d
    CROSS JOIN LATERAL (
        SELECT priority, available_at FROM {schema}.job_queue
        WHERE queue_name = d.name AND state IN ('pending', 'retrying') AND waiting_on = 0
          AND priority < d.priority
        ORDER BY priority DESC, available_at, id LIMIT 1) AS f)
SELECT extract(epoch FROM min(available_at) - clock_timestamp())::float8 FROM due;

-- name: cancel
UPDATE {schema}.job_queue SET state = 'cancelled', exception = %s, updated_at = now(),
    lease_owner = NULL, lease_expires_at = NULL,
    idempotency_key = CASE WHEN idempotency_mode = 'finished' THEN NULL
        ELSE idempotency_key END,
    idempotency_expires_at = CASE WHEN idempotency_mode = 'window'
        THEN now() + make_interval(secs => idempotency_window) ELSE idempotency_expires_at END
WHERE id = %s AND state IN ('pending', 'retrying', 'processing');

-- name: retry
UPDATE {schema}.job_queue
SET state = 'pending', attempts = 0, available_at = now(), updated_at = now(), failed_at = NULL,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = %s AND state IN ('failed', 'cancelled');

-- name: set_priority
UPDATE {schema}.job_queue SET priority = %s, updated_at = now()
WHERE id = %s AND state IN ('pending', 'retrying', 'processing');

-- name: delete
-- The job and the edges to its own dependencies.
WITH edges AS (DELETE FROM {schema}.job_dependencies WHERE job_id = %s)
DELETE FROM {schema}.job_queue WHERE id = %s;

-- name: bulk_retry
-- `retry` for a page of ids in one statement (Driver.apply_many); the changed ids come back.
UPDATE {schema}.job_queue
SET state = 'pending', attempts = 0, available_at = now(), updated_at = now(), failed_at = NULL,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = ANY(%(ids)s::text[]) AND state IN ('failed', 'cancelled')
RETURNING id;

-- name: bulk_cancel
-- `cancel` for a page of ids in one statement.
UPDATE {schema}.job_queue SET state = 'cancelled', exception = %(reason)s, updated_at = now(),
    lease_owner = NULL, lease_expires_at = NULL,
    idempotency_key = CASE WHEN idempotency_mode = 'finished' THEN NULL
        ELSE idempotency_key END,
    idempotency_expires_at = CASE WHEN idempotency_mode = 'window'
        THEN now() + make_interval(secs => idempotency_window) ELSE idempotency_expires_at END
WHERE id = ANY(%(ids)s::text[]) AND state IN ('pending', 'retrying', 'processing')
RETURNING id;

-- name: bulk_priority
-- `set_priority` for a page of ids in one statement.
UPDATE {schema}.job_queue SET priority = %(priority)s, updated_at = now()
WHERE id = ANY(%(ids)s::text[]) AND state IN ('pending', 'retrying', 'processing')
RETURNING id;

-- name: bulk_delete
-- `delete` for a page of ids in one statement, running jobs left alone; the edges to the
-- deleted jobs' own dependencies go with them.
WITH gone AS (
    DELETE FROM {schema}.job_queue
    WHERE id = ANY(%(ids)s::text[]) AND state <> 'processing'
    RETURNING id),
edges AS (DELETE FROM {schema}.job_dependencies WHERE job_id IN (SELECT id FROM gone))
SELECT id FROM gone;

-- name: stats_counts
-- The counters (migration 8): the base rows plus the deltas not folded yet, a few hundred rows
-- whatever the number of jobs.
SELECT queue_name, state, sum(n)::bigint, sum(priority_sum)::bigint FROM (
    SELECT queue_name, state, n, priority_sum FROM {schema}.job_counts
    UNION ALL
    SELECT queue_name, state, n, priority_sum FROM {schema}.job_count_deltas) AS c
GROUP BY queue_name, state HAVING sum(n) <> 0;

-- name: stats_gauges
-- Per queue: the earliest due time of its ready jobs (idx_ready, one probe per distinct
-- priority: see next_due); completions in the last minute, from the per-second counters and
-- the deltas not folded yet.
WITH RECURSIVE queues AS (SELECT unnest(%s::text[]) AS name),
due(name, priority, available_at) AS (
    SELECT q.name, f.priority, f.available_at
    FROM queues AS q
    CROSS JOIN LATERAL (
        SELECT priority, available_at FROM {schema}.job_queue
        WHERE queue_name = q.name AND state IN ('pending', 'retrying') AND waiting_on = 0
        ORDER BY priority DESC, available_at, id LIMIT 1) AS f
    UNION ALL
    SELECT d.name, f.priority, f.available_at
    FROM due AS d
    CROSS JOIN LATERAL (
        SELECT priority, available_at FROM {schema}.job_queue
        WHERE queue_name = d.name AND state IN ('pending', 'retrying') AND waiting_on = 0
          AND priority < d.priority
        ORDER BY priority DESC, available_at, id LIMIT 1) AS f)
SELECT q.name,
    (SELECT min(available_at) FROM due WHERE due.name = q.name),
    (SELECT coalesce(sum(n), 0)::bigint FROM (
        SELECT n FROM {schema}.job_completions
        WHERE queue_name = q.name AND second >= extract(epoch FROM now())::bigint - 60
        UNION ALL
        SELECT n FROM {schema}.job_count_deltas
        WHERE queue_name = q.name AND state = 'completed'
          AND second >= extract(epoch FROM now())::bigint - 60
    ) AS recent)
FROM queues AS q;

-- name: fold_counts
-- Fold the deltas into the base rows now (prune does, after deleting), unless a transaction is
-- folding already.
SELECT {schema}.taskqueue_fold_counts()
WHERE pg_try_advisory_xact_lock(hashtext('taskqueue fold {schema}'));

-- name: prune
-- Finished jobs past their retention, and the edges of the jobs deleted.
-- At most the third parameter of them (NULL: no limit), so a caller can prune in batches.
-- Each arm is a range of one of migration 13's indexes.
WITH doomed AS (
    (SELECT id FROM {schema}.job_queue
     WHERE state = 'completed' AND completed_at < now() - make_interval(secs => %(completed)s)
     UNION ALL
     SELECT id FROM {schema}.job_queue
     WHERE state IN ('failed', 'cancelled')
       AND coalesce(failed_at, updated_at) < now() - make_interval(secs => %(failed)s))
    LIMIT %(limit)s),
gone AS (DELETE FROM {schema}.job_queue WHERE id IN (SELECT id FROM doomed) RETURNING id),
edges AS (DELETE FROM {schema}.job_dependencies WHERE job_id IN (SELECT id FROM gone))
SELECT count(*) FROM gone;

-- name: prune_count
SELECT (SELECT count(*) FROM {schema}.job_queue
        WHERE state = 'completed'
          AND completed_at < now() - make_interval(secs => %(completed)s))
     + (SELECT count(*) FROM {schema}.job_queue
        WHERE state IN ('failed', 'cancelled')
          AND coalesce(failed_at, updated_at) < now() - make_interval(secs => %(failed)s));

-- name: lock_acquire
INSERT INTO {schema}.taskqueue_locks AS l (name, owner, expires_at)
VALUES (%s, %s, now() + make_interval(secs => %s))
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE l.owner = excluded.owner OR l.expires_at < now();

-- name: lock_release
DELETE FROM {schema}.taskqueue_locks WHERE name = %s AND owner = %s;

-- name: counter_incr
-- Add to the counter, or start a new window when the current one has ended.
INSERT INTO {schema}.taskqueue_counters AS c (key, value, expires_at)
VALUES (%s, %s, now() + make_interval(secs => %s))
ON CONFLICT (key) DO UPDATE SET
    value = CASE WHEN c.expires_at <= now() THEN excluded.value
                 ELSE c.value + excluded.value END,
    expires_at = CASE WHEN c.expires_at <= now() THEN excluded.expires_at
                      ELSE c.expires_at END
RETURNING value;

-- name: registry_put
INSERT INTO {schema}.taskqueue_registry (kind, key, data, expires_at)
VALUES (%s, %s, %s, now() + make_interval(secs => %s))
ON CONFLICT (kind, key) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at;

-- name: registry_expire
DELETE FROM {schema}.taskqueue_registry WHERE expires_at <= now();

-- name: registry_list
SELECT data FROM {schema}.taskqueue_registry
WHERE kind = %s AND expires_at > now() ORDER BY key;

-- name: registry_remove
DELETE FROM {schema}.taskqueue_registry WHERE kind = %s AND key = %s;

-- name: restore_job
-- A complete record copied from another store; an existing id (or idempotency key) is kept.
INSERT INTO {schema}.job_queue (id, queue_name, name, payload, state, priority, attempts,
    max_attempts, timeout_seconds, delay_seconds, available_at, created_at, updated_at,
    dependencies, tags, started_at, completed_at, failed_at, exception, result, progress,
    idempotency_key, batch_id, lease_owner, lease_expires_at, lease_epoch)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
    %s, %s, %s, %s, %s)
ON CONFLICT DO NOTHING
RETURNING id;

-- name: applied_migrations
SELECT version FROM {schema}.taskqueue_migrations;

-- name: record_migration
INSERT INTO {schema}.taskqueue_migrations (version) VALUES (%s);
