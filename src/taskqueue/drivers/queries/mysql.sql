-- MySQL 8.0.1+ / MariaDB 10.6+ queries (PyMySQL, `%s` placeholders). Times are DATETIME(6) in
-- UTC; the store clock is UTC_TIMESTAMP(6), which ignores the session time zone, so statements
-- also run correctly on a caller's own connection. Durations arrive as integer microseconds.
-- `{queues}`, `{ids}` and `{rows}` expand to placeholder lists or rendered VALUES rows.
-- No statement may contain a literal percent sign (PyMySQL formats every query with `%`).
-- Multi-column SET lists are written so they give the same result whether the server evaluates
-- assignments left to right (the MySQL default) or simultaneously (MariaDB SIMULTANEOUS_ASSIGNMENT).

-- name: migration_1
-- The job table (original `job_queue` columns plus leases, results and workflow fields), the
-- dependency edges and the small coordination tables. Identifiers compare case-sensitively
-- (utf8mb4_bin); exception text is searched case-insensitively.
CREATE TABLE IF NOT EXISTS job_queue (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    payload LONGBLOB NOT NULL,
    state VARCHAR(16) NOT NULL DEFAULT 'pending',
    priority INT NOT NULL DEFAULT 5,
    queue_name VARCHAR(255) NOT NULL DEFAULT 'default',
    attempts INT NOT NULL DEFAULT 0,
    max_attempts INT NOT NULL DEFAULT 3,
    timeout_seconds INT NOT NULL DEFAULT 60,
    delay_seconds DOUBLE NOT NULL DEFAULT 0,
    dependencies TEXT NULL,
    tags TEXT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    failed_at DATETIME(6) NULL,
    completed_at DATETIME(6) NULL,
    exception MEDIUMTEXT COLLATE utf8mb4_unicode_ci NULL,
    name VARCHAR(255) NOT NULL,
    available_at DATETIME(6) NOT NULL,
    started_at DATETIME(6) NULL,
    result MEDIUMTEXT NULL,
    progress DOUBLE NULL,
    idempotency_key VARCHAR(255) NULL,
    batch_id VARCHAR(255) NULL,
    waiting_on INT NOT NULL DEFAULT 0,
    lease_owner VARCHAR(255) NULL,
    lease_expires_at DATETIME(6) NULL,
    lease_epoch BIGINT NOT NULL DEFAULT 0,
    UNIQUE KEY uq_idempotency_key (idempotency_key),
    KEY idx_queue_state (queue_name, state),
    KEY idx_priority (priority),
    KEY idx_created_at (created_at),
    KEY idx_state (state),
    KEY idx_ready (state, waiting_on, queue_name, priority, available_at),
    KEY idx_lease (state, lease_expires_at),
    KEY idx_batch (batch_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS job_dependencies (
    job_id VARCHAR(36) NOT NULL,
    depends_on VARCHAR(255) NOT NULL,
    PRIMARY KEY (depends_on, job_id),
    KEY idx_dependencies_job (job_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS taskqueue_locks (
    name VARCHAR(255) NOT NULL PRIMARY KEY,
    owner VARCHAR(255) NOT NULL,
    expires_at DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS taskqueue_counters (
    `key` VARCHAR(255) NOT NULL PRIMARY KEY,
    value BIGINT NOT NULL,
    expires_at DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS taskqueue_registry (
    kind VARCHAR(64) NOT NULL,
    `key` VARCHAR(255) NOT NULL,
    data MEDIUMTEXT NOT NULL,
    expires_at DATETIME(6) NOT NULL,
    PRIMARY KEY (kind, `key`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- name: migration_2
-- Idempotency modes (how long a key blocks duplicates) and per-edge dependency satisfaction.
-- MySQL commits each DDL statement on its own: a run interrupted between them is finished by
-- the next one, which skips a column or index that already exists. Edges to parents that are
-- completed (or gone) were released already by the old code, so they start out satisfied.
ALTER TABLE job_queue
    ADD COLUMN idempotency_mode VARCHAR(16) NOT NULL DEFAULT 'exists',
    ADD COLUMN idempotency_window DOUBLE NOT NULL DEFAULT 0,
    ADD COLUMN idempotency_expires_at DATETIME(6) NULL,
    ADD KEY idx_idem_expiry (idempotency_expires_at);
ALTER TABLE job_dependencies ADD COLUMN satisfied TINYINT NOT NULL DEFAULT 0;
UPDATE job_dependencies d LEFT JOIN job_queue p ON p.id = d.depends_on
SET d.satisfied = 1
WHERE p.id IS NULL OR p.state = 'completed';

-- name: migration_3
-- Listing jobs by state (and queue), newest first, without sorting: the dashboard's pages.
CREATE INDEX idx_state_id ON job_queue (state, id);
CREATE INDEX idx_queue_state_id ON job_queue (queue_name, state, id);

-- name: migration_4
-- Cheaper state changes: InnoDB rewrites an entry of every secondary index holding a changed
-- column, so each reservation and each completion touched 8 of them. Gone: (state) and
-- (queue_name, state), prefixes of migration 3's (state, id) and (queue_name, state, id), which
-- serve the same look-ups and stats' GROUP BY; (priority) and (created_at), which no query
-- uses. One statement each (DDL commits one by one); an index already gone is skipped.
DROP INDEX idx_state ON job_queue;
DROP INDEX idx_queue_state ON job_queue;
DROP INDEX idx_priority ON job_queue;
DROP INDEX idx_created_at ON job_queue;

-- name: migration_5
-- The attempt history: a JSON array, one entry per failed or lost attempt (and the final
-- completion after one), appended by the settle statements (see `fail`).
ALTER TABLE job_queue ADD COLUMN attempt_history LONGTEXT;

-- name: migration_6
-- Counters kept as jobs change state, so `stats` reads a few rows instead of counting the table
-- (about a second at a million jobs). Row triggers keep, in the writing transaction whichever
-- statement it is, the jobs per queue, state and priority (job_counts: the average priority,
-- and the priority levels in use, so the oldest ready job is one index dive per level) and the
-- jobs completed per queue and second (job_completions, pruned after two minutes). Each counter
-- is split into 16 slots by connection (MOD(CONNECTION_ID(), 16)), and `stats` adds them up: a
-- transaction holds its counter rows until it commits, and one row per counter would make
-- every worker's completion wait for the others'; two connections share a slot only when their
-- ids do modulo 16 (a rare deadlock between them is re-run like any other). A trigger body is
-- one statement (the migration runner splits on semicolons). The table is locked while the
-- existing rows are counted, so none is missed or counted twice.
CREATE TABLE IF NOT EXISTS job_counts (
    queue_name VARCHAR(255) NOT NULL,
    state VARCHAR(16) NOT NULL,
    priority INT NOT NULL,
    slot TINYINT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (queue_name, state, priority, slot)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS job_completions (
    second BIGINT NOT NULL,
    queue_name VARCHAR(255) NOT NULL,
    slot TINYINT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (second, queue_name, slot)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
DROP TRIGGER IF EXISTS job_counts_insert;
DROP TRIGGER IF EXISTS job_counts_update;
DROP TRIGGER IF EXISTS job_counts_delete;
DROP TRIGGER IF EXISTS job_completions_update;
CREATE TRIGGER job_counts_insert AFTER INSERT ON job_queue FOR EACH ROW
    INSERT INTO job_counts (queue_name, state, priority, slot, n)
    VALUES (NEW.queue_name, NEW.state, NEW.priority, MOD(CONNECTION_ID(), 16), 1)
    ON DUPLICATE KEY UPDATE n = n + 1;
CREATE TRIGGER job_counts_delete AFTER DELETE ON job_queue FOR EACH ROW
    INSERT INTO job_counts (queue_name, state, priority, slot, n)
    VALUES (OLD.queue_name, OLD.state, OLD.priority, MOD(CONNECTION_ID(), 16), -1)
    ON DUPLICATE KEY UPDATE n = n - 1;
CREATE TRIGGER job_counts_update AFTER UPDATE ON job_queue FOR EACH ROW
    INSERT INTO job_counts (queue_name, state, priority, slot, n)
    SELECT queue_name, state, priority, MOD(CONNECTION_ID(), 16), n FROM (
        SELECT OLD.queue_name AS queue_name, OLD.state AS state, OLD.priority AS priority,
            -1 AS n
        UNION ALL
        SELECT NEW.queue_name, NEW.state, NEW.priority, 1) AS d
    WHERE NOT (OLD.state <=> NEW.state AND OLD.queue_name <=> NEW.queue_name
               AND OLD.priority <=> NEW.priority)
    ON DUPLICATE KEY UPDATE n = job_counts.n + VALUES(n);
CREATE TRIGGER job_completions_update AFTER UPDATE ON job_queue FOR EACH ROW
    FOLLOWS job_counts_update
    INSERT INTO job_completions (second, queue_name, slot, n)
    SELECT TIMESTAMPDIFF(SECOND, '1970-01-01', NEW.completed_at), NEW.queue_name,
        MOD(CONNECTION_ID(), 16), 1
    FROM DUAL WHERE NEW.state = 'completed' AND NOT (OLD.state <=> 'completed')
      AND NEW.completed_at IS NOT NULL
    ON DUPLICATE KEY UPDATE n = job_completions.n + 1;
LOCK TABLES job_queue WRITE, job_counts WRITE, job_completions WRITE;
DELETE FROM job_counts;
INSERT INTO job_counts (queue_name, state, priority, slot, n)
SELECT queue_name, state, priority, 0, COUNT(*) FROM job_queue
GROUP BY queue_name, state, priority;
DELETE FROM job_completions;
INSERT INTO job_completions (second, queue_name, slot, n)
SELECT TIMESTAMPDIFF(SECOND, '1970-01-01', completed_at), queue_name, 0, COUNT(*) FROM job_queue
WHERE state = 'completed' AND completed_at >= DATE_SUB(UTC_TIMESTAMP(6), INTERVAL 120 SECOND)
GROUP BY 1, 2;
UNLOCK TABLES;

-- name: migration_7
-- Cheaper counters: a row trigger costs MariaDB tens of microseconds per row even when it
-- changes nothing, and the hot paths changed many rows per statement (a batch of 100
-- completions fired 200 triggers, each an INSERT of a derived UNION): the Worker API's drain
-- lost a third of its rate to them. The driver's hot statements (a plain push, a reservation,
-- a batch of completions) now count their own rows, one grouped statement per batch in the
-- same transaction, with the session variable @taskqueue_counted set; the triggers do nothing
-- while it is set, and count every other write (the other verbs, another program's
-- statements) as before, in one trigger per row and event. The tables are locked while the
-- triggers are replaced, so no write goes uncounted in between. Each trigger is one
-- statement; its indented lines are its body.
LOCK TABLES job_queue WRITE, job_counts WRITE, job_completions WRITE;
DROP TRIGGER IF EXISTS job_counts_insert;
DROP TRIGGER IF EXISTS job_counts_update;
DROP TRIGGER IF EXISTS job_counts_delete;
DROP TRIGGER IF EXISTS job_completions_update;
CREATE TRIGGER job_counts_insert AFTER INSERT ON job_queue FOR EACH ROW
    IF @taskqueue_counted IS NULL THEN
        INSERT INTO job_counts (queue_name, state, priority, slot, n)
        VALUES (NEW.queue_name, NEW.state, NEW.priority, MOD(CONNECTION_ID(), 16), 1)
        ON DUPLICATE KEY UPDATE n = n + 1;
    END IF;
CREATE TRIGGER job_counts_delete AFTER DELETE ON job_queue FOR EACH ROW
    IF @taskqueue_counted IS NULL THEN
        INSERT INTO job_counts (queue_name, state, priority, slot, n)
        VALUES (OLD.queue_name, OLD.state, OLD.priority, MOD(CONNECTION_ID(), 16), -1)
        ON DUPLICATE KEY UPDATE n = n - 1;
    END IF;
CREATE TRIGGER job_counts_update AFTER UPDATE ON job_queue FOR EACH ROW
    IF @taskqueue_counted IS NULL AND NOT (OLD.state <=> NEW.state
            AND OLD.queue_name <=> NEW.queue_name AND OLD.priority <=> NEW.priority) THEN
        INSERT INTO job_counts (queue_name, state, priority, slot, n)
        VALUES (OLD.queue_name, OLD.state, OLD.priority, MOD(CONNECTION_ID(), 16), -1)
        ON DUPLICATE KEY UPDATE n = n - 1;
        INSERT INTO job_counts (queue_name, state, priority, slot, n)
        VALUES (NEW.queue_name, NEW.state, NEW.priority, MOD(CONNECTION_ID(), 16), 1)
        ON DUPLICATE KEY UPDATE n = n + 1;
        IF NEW.state = 'completed' AND NOT (OLD.state <=> 'completed')
                AND NEW.completed_at IS NOT NULL THEN
            INSERT INTO job_completions (second, queue_name, slot, n)
            VALUES (TIMESTAMPDIFF(SECOND, '1970-01-01', NEW.completed_at), NEW.queue_name,
                MOD(CONNECTION_ID(), 16), 1)
            ON DUPLICATE KEY UPDATE n = n + 1;
        END IF;
    END IF;
UNLOCK TABLES;

-- name: migration_8
-- No triggers: a row trigger costs MariaDB tens of microseconds per row even when it does
-- nothing (migration 7's gated ones still cost the Worker API's drain a quarter of its rate).
-- Every statement of the driver that adds, moves or removes jobs now counts them itself, in
-- the same transaction (the counter changes are computed from the rows it locked first, or,
-- for a batch of completions, by one grouped statement), so the counters stay exact through
-- crashes and concurrency as before. SQL of other programs against job_queue is not counted:
-- `taskqueue migrate` corrects the counters from the table (see `recount`). The tables are
-- locked while the triggers go, so no write is half counted.
LOCK TABLES job_queue WRITE, job_counts WRITE, job_completions WRITE;
DROP TRIGGER IF EXISTS job_counts_insert;
DROP TRIGGER IF EXISTS job_counts_update;
DROP TRIGGER IF EXISTS job_counts_delete;
DROP TRIGGER IF EXISTS job_completions_update;
UNLOCK TABLES;

-- name: migration_9
-- Pruning reads the finished jobs past their retention from one index, by the time they
-- finished, instead of every finished row (a range of idx_lease on the three states, each row
-- then read to compare its time). Without partial indexes, two virtual columns hold what
-- prunes by which age (1: completed, 2: failed or cancelled; NULL while a job is unfinished)
-- and since when; a job's entry holds NULLs until it finishes, so a reservation, a retry or a
-- hand-back leaves it as it is (a push writes one).
ALTER TABLE job_queue ADD COLUMN done_kind TINYINT AS (CASE
    WHEN state = 'completed' THEN 1 WHEN state IN ('failed', 'cancelled') THEN 2 END) VIRTUAL;
ALTER TABLE job_queue ADD COLUMN done_at DATETIME(6) AS (CASE
    WHEN state = 'completed' THEN completed_at
    WHEN state IN ('failed', 'cancelled') THEN COALESCE(failed_at, updated_at) END) VIRTUAL;
CREATE INDEX idx_done ON job_queue (done_kind, done_at);

-- name: count_moves
-- Counter changes computed by the driver: `{rows}` are `count_row`s (queue, state, priority,
-- change), in key order.
INSERT INTO job_counts (queue_name, state, priority, slot, n)
VALUES {rows}
ON DUPLICATE KEY UPDATE n = job_counts.n + VALUES(n);

-- name: count_row
(%s, %s, %s, MOD(CONNECTION_ID(), 16), %s)

-- name: count_completions
-- Completions counted by the driver: `{rows}` are `completion_row`s (queue, jobs).
INSERT INTO job_completions (second, queue_name, slot, n)
VALUES {rows}
ON DUPLICATE KEY UPDATE n = job_completions.n + VALUES(n);

-- name: completion_row
(TIMESTAMPDIFF(SECOND, '1970-01-01', UTC_TIMESTAMP(6)), %s, MOD(CONNECTION_ID(), 16), %s)

-- name: lock_token
-- A settle's job, locked while it is still processing under the caller's epoch; the counters
-- move it from there (fail, release).
SELECT id, queue_name, state, priority FROM job_queue
WHERE id = %s AND lease_epoch = %s AND state = 'processing'
FOR UPDATE;

-- name: lock_any
-- The jobs of `{ids}` in any state, locked in id order (delete).
SELECT id, queue_name, state, priority FROM job_queue WHERE id IN ({ids}) ORDER BY id FOR UPDATE;

-- name: recount_table
-- `recount`, in one consistent snapshot with `recount_counters`: the jobs as they are...
SELECT queue_name, state, priority, COUNT(*) FROM job_queue GROUP BY queue_name, state, priority;

-- name: recount_counters
-- ... and as the counters have them.
SELECT queue_name, state, priority, SUM(n) FROM job_counts GROUP BY queue_name, state, priority;

-- name: get_migration_lock
-- A server-wide named lock, so processes starting together migrate one at a time.
SELECT GET_LOCK(%s, 60);

-- name: release_migration_lock
SELECT RELEASE_LOCK(%s);

-- name: create_migrations
CREATE TABLE IF NOT EXISTS taskqueue_migrations (
    version INT NOT NULL PRIMARY KEY,
    applied_at DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- name: applied_migrations
SELECT version FROM taskqueue_migrations;

-- name: record_migration
INSERT INTO taskqueue_migrations (version, applied_at) VALUES (%s, UTC_TIMESTAMP(6));

-- name: now
SELECT UTC_TIMESTAMP(6);

-- name: insert_jobs
-- New jobs, many rows in one statement; `{rows}` are rendered `job_row`s.
INSERT INTO job_queue (id, queue_name, name, payload, state, priority, max_attempts,
    timeout_seconds, delay_seconds, available_at, dependencies, tags, created_at, updated_at,
    idempotency_key, batch_id, idempotency_mode, idempotency_window)
VALUES {rows};

-- name: insert_keyed_jobs
-- Jobs with an idempotency key: a duplicate key leaves the existing row as it is (and locks it,
-- so it cannot vanish before the caller reads its id back). A duplicate primary key is caught
-- afterwards, when the key does not map back to any row.
INSERT INTO job_queue (id, queue_name, name, payload, state, priority, max_attempts,
    timeout_seconds, delay_seconds, available_at, dependencies, tags, created_at, updated_at,
    idempotency_key, batch_id, idempotency_mode, idempotency_window)
VALUES {rows}
ON DUPLICATE KEY UPDATE id = id;

-- name: job_row
(%s, %s, %s, %s, 'pending', %s, %s, %s, %s,
 DATE_ADD(UTC_TIMESTAMP(6), INTERVAL %s MICROSECOND), %s, %s,
 UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), %s, %s, %s, %s)

-- name: expire_idempotency_keys
-- Keys whose "window" after finishing has passed no longer block new jobs.
UPDATE job_queue SET idempotency_key = NULL
WHERE idempotency_key IN ({ids}) AND idempotency_expires_at <= UTC_TIMESTAMP(6);

-- name: ids_by_idempotency_key
SELECT idempotency_key, id FROM job_queue WHERE idempotency_key IN ({ids});

-- name: insert_dependencies
INSERT INTO job_dependencies (job_id, depends_on) VALUES {rows}
ON DUPLICATE KEY UPDATE job_id = job_id;

-- name: dependency_row
(%s, %s)

-- name: lock_parents
-- Share-lock the parents of not yet satisfied edges. It waits for a parent that is being
-- completed right now (and then sees its committed state), and it holds the parents' rows until
-- this transaction commits, so a completion that starts later runs `release_dependents` only
-- after our edges are visible. Either way no wake-up is lost.
SELECT p.id FROM job_dependencies d JOIN job_queue p ON p.id = d.depends_on
WHERE d.job_id IN ({ids}) AND d.satisfied = 0
LOCK IN SHARE MODE;

-- name: mark_satisfied_edges
-- Edges to dependencies that are completed (or do not exist) are satisfied from the start.
UPDATE job_dependencies d LEFT JOIN job_queue p ON p.id = d.depends_on
SET d.satisfied = 1
WHERE d.job_id IN ({ids}) AND d.satisfied = 0 AND (p.id IS NULL OR p.state = 'completed');

-- name: count_waiting
-- How many of each job's dependencies are not satisfied yet.
SELECT job_id, count(*) FROM job_dependencies
WHERE job_id IN ({ids}) AND satisfied = 0
GROUP BY job_id;

-- name: set_waiting
-- `{cases}` is a list of `WHEN %s THEN %s`.
UPDATE job_queue SET waiting_on = CASE id {cases} ELSE waiting_on END WHERE id IN ({ids});

-- name: reserve_candidates
-- The best ready jobs by a plain (non-locking) read of the covering ready index; `{exclude}`
-- leaves out ids already looked at in this reservation.
SELECT id FROM job_queue
WHERE state IN ('pending', 'retrying') AND waiting_on = 0 AND queue_name IN ({queues})
  AND available_at <= UTC_TIMESTAMP(6) {exclude}
ORDER BY priority DESC, available_at, id
LIMIT %s;

-- name: reserve_pick
-- The best ready jobs, locked, in one statement: the derived table is a plain (non-locking) read
-- of the ready index, and STRAIGHT_JOIN makes the locking read probe the primary key for those
-- candidates only (joined the other way round, the locking read would walk the ready index and
-- lock every ready row). Rows another reserver holds are skipped; the rest are re-checked.
SELECT j.id, j.queue_name, j.state, j.priority FROM (
    SELECT id FROM job_queue
    WHERE state IN ('pending', 'retrying') AND waiting_on = 0 AND queue_name IN ({queues})
      AND available_at <= UTC_TIMESTAMP(6)
    ORDER BY priority DESC, available_at, id
    LIMIT %s) c
STRAIGHT_JOIN job_queue j ON j.id = c.id
WHERE j.state IN ('pending', 'retrying') AND j.waiting_on = 0
  AND j.available_at <= UTC_TIMESTAMP(6)
FOR UPDATE SKIP LOCKED;

-- name: reserve_lock
-- Lock the candidates that are still ready, skipping those another reserver holds.
SELECT id, queue_name, state, priority FROM job_queue
WHERE id IN ({ids}) AND state IN ('pending', 'retrying') AND waiting_on = 0
  AND available_at <= UTC_TIMESTAMP(6)
FOR UPDATE SKIP LOCKED;

-- name: reserve_update
UPDATE job_queue
SET state = 'processing', attempts = attempts + 1, lease_owner = %s,
    lease_expires_at = DATE_ADD(UTC_TIMESTAMP(6), INTERVAL %s MICROSECOND),
    lease_epoch = lease_epoch + 1, started_at = UTC_TIMESTAMP(6), updated_at = UTC_TIMESTAMP(6),
    idempotency_key = IF(idempotency_mode IN ('started', 'debounce'), NULL, idempotency_key)
WHERE id IN ({ids});

-- name: reserve_job_lock
-- Lock one given job if it is ready now (waiting for a reserver that merely looked at it).
SELECT id, queue_name, state, priority FROM job_queue
WHERE id = %s AND state IN ('pending', 'retrying') AND waiting_on = 0
  AND available_at <= UTC_TIMESTAMP(6)
FOR UPDATE;

-- name: replace_payload
-- Parameters: payload, delay (µs), delay (s), id.
UPDATE job_queue
SET payload = %s, available_at = DATE_ADD(UTC_TIMESTAMP(6), INTERVAL %s MICROSECOND),
    delay_seconds = %s, updated_at = UTC_TIMESTAMP(6)
WHERE id = %s AND state = 'pending';

-- name: existing_ids
SELECT id FROM job_queue WHERE id IN ({ids});

-- name: select_ordered
SELECT {columns} FROM job_queue WHERE id IN ({ids}) ORDER BY priority DESC, available_at, id;

-- name: extend_leases
-- `{pairs}` is a list of `(%s, %s)` (id, epoch) rows.
UPDATE job_queue
SET lease_expires_at = DATE_ADD(UTC_TIMESTAMP(6), INTERVAL %s MICROSECOND),
    updated_at = UTC_TIMESTAMP(6)
WHERE id IN ({ids}) AND state = 'processing' AND (id, lease_epoch) IN ({pairs});

-- name: lease_states
SELECT id, state, lease_epoch FROM job_queue WHERE id IN ({ids});

-- name: complete_lock
-- complete_many, step 1: lock the batch's rows still processing (in id order, so concurrent
-- batches do not deadlock each other) and read their epochs, queue and priority: under these
-- locks the UPDATE that follows completes exactly the rows whose epoch the caller holds, and
-- the counters move them.
SELECT id, lease_epoch, queue_name, state, priority FROM job_queue
WHERE id IN ({ids}) AND state = 'processing'
ORDER BY id FOR UPDATE;

-- name: complete_many
-- complete_many, step 2: `complete` for the ids whose epoch step 1 matched (locked, so
-- still processing at that epoch: no epoch test here, whose row-constructor IN list cost the
-- range optimizer more than the rest of the batch); `{result}` is NULL or a
-- `CASE id WHEN %s THEN %s … END` (the first item of a job wins).
UPDATE job_queue
SET attempt_history = IF(attempt_history IS NULL, NULL, JSON_ARRAY_APPEND(
        IF(JSON_VALID(attempt_history), attempt_history, '[]'), '$',
        JSON_OBJECT('attempt', attempts, 'worker', lease_owner,
        'started_at', TIMESTAMPDIFF(MICROSECOND, '1970-01-01', started_at) / 1000000,
        'ended_at', TIMESTAMPDIFF(MICROSECOND, '1970-01-01', UTC_TIMESTAMP(6)) / 1000000,
        'outcome', 'completed', 'error', NULL))),
    state = 'completed', result = {result}, completed_at = UTC_TIMESTAMP(6),
    updated_at = UTC_TIMESTAMP(6), progress = 100, lease_owner = NULL, lease_expires_at = NULL,
    exception = NULL,
    idempotency_key = IF(idempotency_mode = 'finished', NULL, idempotency_key),
    idempotency_expires_at = IF(idempotency_mode = 'window', DATE_ADD(UTC_TIMESTAMP(6),
        INTERVAL ROUND(idempotency_window * 1000000) MICROSECOND), idempotency_expires_at)
WHERE id IN ({ids}) AND state = 'processing';

-- name: claim_edges_many
-- complete_many, step 3: `claim_edges` for the batch's jobs completed by step 2.
-- A single-table UPDATE probing the edges' primary key per id (semi-consistent, like
-- claim_edges: a child being pushed right now is skipped, not waited for); nothing to find
-- costs next to nothing.
UPDATE job_dependencies SET satisfied = 2
WHERE depends_on IN ({ids}) AND satisfied = 0;

-- name: release_claimed_many
-- complete_many, step 4: each child loses one wait per claimed edge (a child of two jobs of
-- the batch loses two); then the claimed edges are marked satisfied.
UPDATE job_queue j JOIN (
    SELECT job_id, count(*) AS n FROM job_dependencies
    WHERE depends_on IN ({ids}) AND satisfied = 2 GROUP BY job_id) e ON j.id = e.job_id
SET j.waiting_on = GREATEST(j.waiting_on - e.n, 0)
WHERE j.waiting_on > 0;
UPDATE job_dependencies SET satisfied = 1 WHERE depends_on IN ({ids}) AND satisfied = 2;

-- name: claim_edges
-- A completed (or, by policy, failed) job satisfies each edge to it once: its unsatisfied edges
-- are first marked 2 ("being satisfied by this transaction"). This scans the primary key, so
-- the edges of a child being pushed right now (uncommitted) are skipped, not waited for.
UPDATE job_dependencies SET satisfied = 2 WHERE depends_on = %s AND satisfied = 0;

-- name: claimed_edges
-- A plain read: it sees this transaction's own marks and never waits for other writers.
SELECT job_id FROM job_dependencies WHERE depends_on = %s AND satisfied = 2;

-- name: lock_waiting
-- The dependents whose edge this transaction claimed, and how many edges they wait on.
SELECT id, waiting_on FROM job_queue WHERE id IN ({ids}) ORDER BY id FOR UPDATE;

-- name: release_dependents
UPDATE job_queue SET waiting_on = waiting_on - 1 WHERE id IN ({ids}) AND waiting_on > 0;

-- name: satisfy_edges
UPDATE job_dependencies SET satisfied = 1 WHERE depends_on = %s AND satisfied = 2;

-- name: dependents
-- A plain read of committed edges: it never waits for a child being pushed right now (that
-- child saw its parent not completed, so it keeps waiting, as if pushed after this).
SELECT job_id FROM job_dependencies WHERE depends_on = %s;

-- name: lock_pending
-- The dependents a failed or cancelled job takes down with it.
SELECT id, queue_name, state, priority FROM job_queue WHERE id IN ({ids}) AND state = 'pending'
ORDER BY id FOR UPDATE;

-- name: cancel_dependents
UPDATE job_queue SET state = 'cancelled', exception = %s, updated_at = UTC_TIMESTAMP(6),
    idempotency_key = IF(idempotency_mode = 'finished', NULL, idempotency_key),
    idempotency_expires_at = IF(idempotency_mode = 'window', DATE_ADD(UTC_TIMESTAMP(6),
        INTERVAL ROUND(idempotency_window * 1000000) MICROSECOND), idempotency_expires_at)
WHERE id IN ({ids}) AND state = 'pending';

-- name: fail
-- Parameters: the outcome (the state) and clipped error for the attempt history (first: MySQL
-- assigns left to right, so it reads the lease owner before it is cleared), state, error, due
-- in (µs), is-dead-letter flag (three times), id, epoch.
UPDATE job_queue
SET attempt_history = JSON_ARRAY_APPEND(IF(JSON_VALID(attempt_history), attempt_history, '[]'), '$',
        JSON_OBJECT('attempt', attempts, 'worker', lease_owner,
        'started_at', TIMESTAMPDIFF(MICROSECOND, '1970-01-01', started_at) / 1000000,
        'ended_at', TIMESTAMPDIFF(MICROSECOND, '1970-01-01', UTC_TIMESTAMP(6)) / 1000000,
        'outcome', %s, 'error', %s)),
    state = %s, exception = %s,
    available_at = DATE_ADD(UTC_TIMESTAMP(6), INTERVAL %s MICROSECOND),
    failed_at = IF(%s, UTC_TIMESTAMP(6), NULL), updated_at = UTC_TIMESTAMP(6),
    lease_owner = NULL, lease_expires_at = NULL,
    idempotency_key = IF(%s AND idempotency_mode = 'finished', NULL, idempotency_key),
    idempotency_expires_at = IF(%s AND idempotency_mode = 'window', DATE_ADD(UTC_TIMESTAMP(6),
        INTERVAL ROUND(idempotency_window * 1000000) MICROSECOND), idempotency_expires_at)
WHERE id = %s AND lease_epoch = %s AND state = 'processing';

-- name: release
-- Hand a job back unrun: the attempt it used is refunded; a reason (if any) replaces exception.
UPDATE job_queue
SET state = 'pending', attempts = GREATEST(attempts - 1, 0),
    available_at = DATE_ADD(UTC_TIMESTAMP(6), INTERVAL %s MICROSECOND),
    exception = COALESCE(%s, exception), updated_at = UTC_TIMESTAMP(6),
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = %s AND lease_epoch = %s AND state = 'processing';

-- name: set_progress
UPDATE job_queue SET progress = %s, updated_at = UTC_TIMESTAMP(6)
WHERE id = %s AND lease_epoch = %s AND state = 'processing';

-- name: expired_leases
-- Locked with what the counters need: where each job goes (see recover_expired).
SELECT id, queue_name, state, priority, attempts >= max_attempts FROM job_queue
WHERE state = 'processing' AND lease_expires_at < UTC_TIMESTAMP(6)
ORDER BY id
FOR UPDATE SKIP LOCKED;

-- name: recover_expired
-- Leases that ran out: retry if attempts remain, else dead-letter. The exception is set before
-- the lease owner is cleared (it names the lost worker).
UPDATE job_queue
SET attempt_history = JSON_ARRAY_APPEND(IF(JSON_VALID(attempt_history), attempt_history, '[]'), '$',
        JSON_OBJECT('attempt', attempts, 'worker', lease_owner,
        'started_at', TIMESTAMPDIFF(MICROSECOND, '1970-01-01', started_at) / 1000000,
        'ended_at', TIMESTAMPDIFF(MICROSECOND, '1970-01-01', UTC_TIMESTAMP(6)) / 1000000,
        'outcome', IF(attempts >= max_attempts, 'failed', 'retrying'),
        'error', CONCAT('LeaseExpired: worker ', COALESCE(lease_owner, '?'),
            ' stopped renewing its lease (attempt ', attempts, ' of ', max_attempts, ')'))),
    state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'retrying' END,
    failed_at = CASE WHEN attempts >= max_attempts THEN UTC_TIMESTAMP(6) ELSE failed_at END,
    exception = CONCAT('LeaseExpired: worker ', COALESCE(lease_owner, '?'),
        ' stopped renewing its lease (attempt ', attempts, ' of ', max_attempts, ')'),
    available_at = UTC_TIMESTAMP(6), updated_at = UTC_TIMESTAMP(6),
    lease_owner = NULL, lease_expires_at = NULL,
    idempotency_key = IF(attempts >= max_attempts AND idempotency_mode = 'finished', NULL,
        idempotency_key),
    idempotency_expires_at = IF(attempts >= max_attempts AND idempotency_mode = 'window',
        DATE_ADD(UTC_TIMESTAMP(6), INTERVAL ROUND(idempotency_window * 1000000) MICROSECOND),
        idempotency_expires_at)
WHERE id IN ({ids}) AND state = 'processing';

-- name: worker_leases
-- The jobs a dead worker process still holds (state and owner fence them), with what the
-- counters need (see recover_worker).
SELECT id, queue_name, state, priority, attempts >= max_attempts FROM job_queue
WHERE state = 'processing' AND lease_owner = %s
ORDER BY id
FOR UPDATE;

-- name: recover_worker
-- Those jobs that it had started, at once, as expired leases would be, with the cause the
-- supervisor saw (the caller names them: all, or those it had started).
UPDATE job_queue
SET attempt_history = JSON_ARRAY_APPEND(IF(JSON_VALID(attempt_history), attempt_history, '[]'), '$',
        JSON_OBJECT('attempt', attempts, 'worker', lease_owner,
        'started_at', TIMESTAMPDIFF(MICROSECOND, '1970-01-01', started_at) / 1000000,
        'ended_at', TIMESTAMPDIFF(MICROSECOND, '1970-01-01', UTC_TIMESTAMP(6)) / 1000000,
        'outcome', IF(attempts >= max_attempts, 'failed', 'retrying'),
        'error', CONCAT(%s, ' (attempt ', attempts, ' of ', max_attempts, ')'))),
    state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'retrying' END,
    failed_at = CASE WHEN attempts >= max_attempts THEN UTC_TIMESTAMP(6) ELSE failed_at END,
    exception = CONCAT(%s, ' (attempt ', attempts, ' of ', max_attempts, ')'),
    available_at = UTC_TIMESTAMP(6), updated_at = UTC_TIMESTAMP(6),
    lease_owner = NULL, lease_expires_at = NULL,
    idempotency_key = IF(attempts >= max_attempts AND idempotency_mode = 'finished', NULL,
        idempotency_key),
    idempotency_expires_at = IF(attempts >= max_attempts AND idempotency_mode = 'window',
        DATE_ADD(UTC_TIMESTAMP(6), INTERVAL ROUND(idempotency_window * 1000000) MICROSECOND),
        idempotency_expires_at)
WHERE id IN ({ids}) AND state = 'processing' AND lease_owner = %s;

-- name: release_worker
-- The others (reserved, never started) go back unrun, attempt refunded.
UPDATE job_queue
SET state = 'pending', attempts = GREATEST(attempts - 1, 0),
    available_at = UTC_TIMESTAMP(6), updated_at = UTC_TIMESTAMP(6),
    lease_owner = NULL, lease_expires_at = NULL
WHERE id IN ({ids}) AND state = 'processing' AND lease_owner = %s;

-- name: next_due
-- Microseconds until the next waiting job is due (<= 0: ready now; NULL: none waiting).
SELECT TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), min(available_at)) FROM job_queue
WHERE state IN ('pending', 'retrying') AND waiting_on = 0 AND queue_name IN ({queues});

-- name: delete
DELETE FROM job_queue WHERE id = %s;

-- name: delete_edges
DELETE FROM job_dependencies WHERE job_id = %s;

-- name: bulk_lock
-- The jobs of a page that `apply_many` may change, locked (in primary-key order) until the
-- statement below commits in the same transaction: MySQL has no RETURNING, so the ids
-- changed are the ids locked here, and their queue, state and priority are what the counters
-- move. `{states}` are the states the action applies to.
SELECT id, queue_name, state, priority FROM job_queue WHERE id IN ({ids}) AND state IN ({states})
ORDER BY id FOR UPDATE;

-- name: bulk_retry
-- `retry` for the ids `bulk_lock` returned.
UPDATE job_queue
SET state = 'pending', attempts = 0, available_at = UTC_TIMESTAMP(6),
    updated_at = UTC_TIMESTAMP(6), failed_at = NULL, lease_owner = NULL, lease_expires_at = NULL
WHERE id IN ({ids}) AND state IN ('failed', 'cancelled');

-- name: bulk_cancel
UPDATE job_queue SET state = 'cancelled', exception = %s, updated_at = UTC_TIMESTAMP(6),
    lease_owner = NULL, lease_expires_at = NULL,
    idempotency_key = IF(idempotency_mode = 'finished', NULL, idempotency_key),
    idempotency_expires_at = IF(idempotency_mode = 'window', DATE_ADD(UTC_TIMESTAMP(6),
        INTERVAL ROUND(idempotency_window * 1000000) MICROSECOND), idempotency_expires_at)
WHERE id IN ({ids}) AND state IN ('pending', 'retrying', 'processing');

-- name: bulk_priority
UPDATE job_queue SET priority = %s, updated_at = UTC_TIMESTAMP(6)
WHERE id IN ({ids}) AND state IN ('pending', 'retrying', 'processing');

-- name: bulk_delete_edges
DELETE FROM job_dependencies WHERE job_id IN ({ids});

-- name: bulk_delete
DELETE FROM job_queue WHERE id IN ({ids}) AND state <> 'processing';

-- name: stats_counts
-- The counters (migration 6), summed over their slots: a few rows per queue, state and priority
-- level whatever the number of jobs.
SELECT queue_name, state, priority, SUM(n) FROM job_counts
GROUP BY queue_name, state, priority HAVING SUM(n) <> 0;

-- name: stats_level
-- The earliest due time of a queue's ready jobs of one waiting state and priority level: one
-- dive into idx_ready (MIN over its equality prefix), whatever the index statistics say. `stats`
-- asks for every level in use in one statement (UNION ALL), so it reads a few index entries,
-- not the backlog (a GROUP BY's loose index scan was picked only while the statistics were
-- fresh; right after a load it read every waiting job).
SELECT MIN(available_at) AS due FROM job_queue
WHERE state = %s AND waiting_on = 0 AND queue_name = %s AND priority = %s

-- name: stats_recent
SELECT queue_name, SUM(n) FROM job_completions
WHERE second >= TIMESTAMPDIFF(SECOND, '1970-01-01', UTC_TIMESTAMP()) - 60 GROUP BY queue_name;

-- name: prune_completions
-- Per-second completion counters older than the last minute's are of no further use.
DELETE FROM job_completions
WHERE second < TIMESTAMPDIFF(SECOND, '1970-01-01', UTC_TIMESTAMP()) - 120;

-- name: prune_lock
-- The finished jobs of one kind (1: completed, 2: failed or cancelled) old enough to go, at
-- most the given number, locked with what the counters need, read from idx_done (migration
-- 9); `prune_delete` then deletes exactly these. Parameters: the kind, its age (µs), the most
-- rows.
SELECT id, queue_name, state, priority FROM job_queue
WHERE done_kind = %s AND done_at < DATE_SUB(UTC_TIMESTAMP(6), INTERVAL %s MICROSECOND)
LIMIT %s
FOR UPDATE SKIP LOCKED;

-- name: prune_delete
-- The jobs `prune_lock` locked (it skips a row another transaction holds: the next prune
-- takes it).
DELETE FROM job_queue WHERE id IN ({ids});

-- name: prune_count
SELECT (SELECT COUNT(*) FROM job_queue
        WHERE done_kind = 1 AND done_at < DATE_SUB(UTC_TIMESTAMP(6), INTERVAL %s MICROSECOND))
     + (SELECT COUNT(*) FROM job_queue
        WHERE done_kind = 2 AND done_at < DATE_SUB(UTC_TIMESTAMP(6), INTERVAL %s MICROSECOND));

-- name: prune_edges
-- The edges of the jobs `prune_delete` deleted, by idx_dependencies_job (not an anti-join of
-- every edge with the table).
DELETE FROM job_dependencies WHERE job_id IN ({ids});

-- name: lock_acquire
-- Take a free or expired lock, or renew our own. `owner` is assigned first: under left-to-right
-- evaluation the expiry test then sees the new owner, which is ours exactly when we won.
INSERT INTO taskqueue_locks (name, owner, expires_at)
VALUES (%s, %s, DATE_ADD(UTC_TIMESTAMP(6), INTERVAL %s MICROSECOND))
ON DUPLICATE KEY UPDATE
    owner = IF(owner = VALUES(owner) OR expires_at < UTC_TIMESTAMP(6), VALUES(owner), owner),
    expires_at = IF(owner = VALUES(owner) OR expires_at < UTC_TIMESTAMP(6),
                    VALUES(expires_at), expires_at);

-- name: lock_owner
SELECT owner FROM taskqueue_locks WHERE name = %s;

-- name: lock_release
DELETE FROM taskqueue_locks WHERE name = %s AND owner = %s;

-- name: counter_incr
INSERT INTO taskqueue_counters (`key`, value, expires_at)
VALUES (%s, %s, DATE_ADD(UTC_TIMESTAMP(6), INTERVAL %s MICROSECOND))
ON DUPLICATE KEY UPDATE
    value = IF(expires_at <= UTC_TIMESTAMP(6), VALUES(value), value + VALUES(value)),
    expires_at = IF(expires_at <= UTC_TIMESTAMP(6), VALUES(expires_at), expires_at);

-- name: counter_value
SELECT value FROM taskqueue_counters WHERE `key` = %s;

-- name: registry_put
INSERT INTO taskqueue_registry (kind, `key`, data, expires_at)
VALUES (%s, %s, %s, DATE_ADD(UTC_TIMESTAMP(6), INTERVAL %s MICROSECOND))
ON DUPLICATE KEY UPDATE data = VALUES(data), expires_at = VALUES(expires_at);

-- name: registry_list
SELECT data FROM taskqueue_registry
WHERE kind = %s AND expires_at > UTC_TIMESTAMP(6) ORDER BY `key`;

-- name: registry_remove
DELETE FROM taskqueue_registry WHERE kind = %s AND `key` = %s;

-- name: registry_expire
DELETE FROM taskqueue_registry WHERE expires_at <= UTC_TIMESTAMP(6);

-- name: restore_jobs
-- Complete records copied from another store; a row whose id (or idempotency key) exists is
-- left alone. `{rows}` are rendered `restore_row`s.
INSERT INTO job_queue (id, queue_name, name, payload, state, priority, attempts, max_attempts,
    timeout_seconds, delay_seconds, available_at, created_at, updated_at, dependencies, tags,
    started_at, completed_at, failed_at, exception, result, progress, idempotency_key,
    batch_id, lease_owner, lease_expires_at, lease_epoch)
VALUES {rows}
ON DUPLICATE KEY UPDATE id = id;

-- name: restore_row
(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
 %s, %s, %s)
