-- SQLite queries. Times are Unix epoch seconds (REAL) from the host clock, which is the store's
-- clock for an embedded database. `{queues}` and `{ids}` expand to placeholder lists.

-- name: migration_1
-- The job table (original `job_queue` columns plus leases, results and workflow fields),
-- dependency edges, and the small coordination tables.
CREATE TABLE IF NOT EXISTS job_queue (
    id TEXT PRIMARY KEY,
    payload BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    priority INTEGER NOT NULL DEFAULT 5,
    queue_name TEXT NOT NULL DEFAULT 'default',
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 3,
    timeout_seconds INTEGER NOT NULL DEFAULT 60,
    delay_seconds REAL NOT NULL DEFAULT 0,
    dependencies TEXT,
    tags TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    failed_at REAL,
    completed_at REAL,
    exception TEXT,
    name TEXT NOT NULL,
    available_at REAL NOT NULL,
    started_at REAL,
    result TEXT,
    progress REAL,
    idempotency_key TEXT UNIQUE,
    batch_id TEXT,
    waiting_on INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_expires_at REAL,
    lease_epoch INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS idx_queue_state ON job_queue (queue_name, state);
CREATE INDEX IF NOT EXISTS idx_priority ON job_queue (priority);
CREATE INDEX IF NOT EXISTS idx_created_at ON job_queue (created_at);
CREATE INDEX IF NOT EXISTS idx_state ON job_queue (state);
CREATE INDEX IF NOT EXISTS idx_ready ON job_queue (queue_name, priority DESC, available_at, id)
    WHERE state IN ('pending', 'retrying') AND waiting_on = 0;
CREATE INDEX IF NOT EXISTS idx_lease ON job_queue (lease_expires_at) WHERE state = 'processing';
CREATE INDEX IF NOT EXISTS idx_batch ON job_queue (batch_id) WHERE batch_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS job_dependencies (
    job_id TEXT NOT NULL,
    depends_on TEXT NOT NULL,
    PRIMARY KEY (depends_on, job_id)
);
CREATE TABLE IF NOT EXISTS taskqueue_locks (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS taskqueue_counters (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS taskqueue_registry (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    data TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (kind, key)
);

-- name: migration_2
-- Idempotency modes (how long a key blocks duplicates) and per-edge dependency satisfaction.
ALTER TABLE job_queue ADD COLUMN idempotency_mode TEXT NOT NULL DEFAULT 'exists';
ALTER TABLE job_queue ADD COLUMN idempotency_window REAL NOT NULL DEFAULT 0;
ALTER TABLE job_queue ADD COLUMN idempotency_expires_at REAL;
ALTER TABLE job_dependencies ADD COLUMN satisfied INTEGER NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS idx_idem_expiry ON job_queue (idempotency_expires_at)
    WHERE idempotency_expires_at IS NOT NULL;

-- name: migration_3
-- Listing jobs by state (and queue), newest first, without sorting: the dashboard's pages.
CREATE INDEX IF NOT EXISTS idx_state_id ON job_queue (state, id);
CREATE INDEX IF NOT EXISTS idx_queue_state_id ON job_queue (queue_name, state, id);

-- name: migration_4
-- Faster state changes. Every reserve and completion moved the row in each index on `state`;
-- the listing indexes now leave out `processing` rows (few by construction: what workers hold,
-- found through idx_lease), so a job enters them once, when it settles, and leaves once, when
-- it is reserved. (queue_name, id) serves listings by queue and never changes with state.
-- Queries that want these indexes must say `state != 'processing'` literally.
DROP INDEX IF EXISTS idx_state;
DROP INDEX IF EXISTS idx_queue_state;
DROP INDEX IF EXISTS idx_state_id;
DROP INDEX IF EXISTS idx_queue_state_id;
CREATE INDEX IF NOT EXISTS idx_state_id ON job_queue (state, id) WHERE state != 'processing';
CREATE INDEX IF NOT EXISTS idx_queue_state_id ON job_queue (queue_name, state, id)
    WHERE state != 'processing';
CREATE INDEX IF NOT EXISTS idx_queue_id ON job_queue (queue_name, id);

-- name: migration_5
-- The attempt history: a JSON array, one entry per failed or lost attempt (and the final
-- completion after one), appended by the settle statements (see `fail`).
ALTER TABLE job_queue ADD COLUMN attempt_history TEXT;

-- name: migration_6
-- Counters kept as jobs change state, so `stats` reads a few rows instead of counting the
-- table (a million jobs took about a second). job_counts: per queue and state, the jobs and the
-- sum of their priorities (the average priority of the waiting ones). job_completions: per
-- queue, a ring of 64 one-second slots of completions (completed in the last minute; a slot is
-- reset when a later second reuses it). Triggers keep both in the same transaction as every
-- insert, state or priority change and delete, whichever statement makes it; the existing rows
-- are counted once here. SQLite has one writer at a time, so one row per counter holds no one
-- up. A queue's rows are created before its first job is inserted (`ensure_counts`, by push
-- and restore; by the BEFORE trigger when a job moves to another queue), so the triggers on the
-- hot path only UPDATE: a statement whose trigger
-- writes and that could abort half-way needs a statement journal (a copy of every page it
-- touches), and an INSERT or an upsert in the trigger made each push or settle 20-40 us dearer.
-- For the same reason the hot statements say `OR FAIL` instead of the default ABORT, which
-- changes nothing here: every write is its own transaction, rolled back whole on an error.
CREATE TABLE IF NOT EXISTS job_counts (
    queue_name TEXT NOT NULL,
    state TEXT NOT NULL,
    n INTEGER NOT NULL,
    priority_sum INTEGER NOT NULL,
    PRIMARY KEY (queue_name, state)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS job_completions (
    queue_name TEXT NOT NULL,
    slot INTEGER NOT NULL,
    second INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (queue_name, slot)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS job_count_states (state TEXT PRIMARY KEY) WITHOUT ROWID;
INSERT OR IGNORE INTO job_count_states (state) VALUES ('pending'), ('processing'),
    ('completed'), ('failed'), ('retrying'), ('cancelled');
CREATE TABLE IF NOT EXISTS job_completion_slots (slot INTEGER PRIMARY KEY);
INSERT OR IGNORE INTO job_completion_slots (slot)
WITH RECURSIVE n(slot) AS (SELECT 0 UNION ALL SELECT slot + 1 FROM n WHERE slot < 63)
SELECT slot FROM n;
CREATE TRIGGER IF NOT EXISTS job_counts_insert AFTER INSERT ON job_queue BEGIN
    UPDATE job_counts SET n = n + 1, priority_sum = priority_sum + new.priority
    WHERE queue_name = new.queue_name AND state = new.state;
    UPDATE job_completions
    SET n = CASE WHEN second = CAST(new.completed_at AS INTEGER) THEN n + 1 ELSE 1 END,
        second = CAST(new.completed_at AS INTEGER)
    WHERE new.state = 'completed' AND queue_name = new.queue_name
      AND slot = CAST(new.completed_at AS INTEGER) % 64
      AND second <= CAST(new.completed_at AS INTEGER);
END;
CREATE TRIGGER IF NOT EXISTS job_counts_move BEFORE UPDATE OF queue_name ON job_queue
WHEN old.queue_name IS NOT new.queue_name BEGIN
    INSERT INTO job_counts (queue_name, state, n, priority_sum)
    SELECT new.queue_name, state, 0, 0 FROM job_count_states
    WHERE NOT EXISTS (SELECT 1 FROM job_counts WHERE queue_name = new.queue_name);
    INSERT INTO job_completions (queue_name, slot, second, n)
    SELECT new.queue_name, slot, 0, 0 FROM job_completion_slots
    WHERE NOT EXISTS (SELECT 1 FROM job_completions WHERE queue_name = new.queue_name);
END;
CREATE TRIGGER IF NOT EXISTS job_counts_delete AFTER DELETE ON job_queue BEGIN
    UPDATE job_counts SET n = n - 1, priority_sum = priority_sum - old.priority
    WHERE queue_name = old.queue_name AND state = old.state;
END;
CREATE TRIGGER IF NOT EXISTS job_counts_update AFTER UPDATE OF state, queue_name, priority
ON job_queue
WHEN old.state IS NOT new.state OR old.queue_name IS NOT new.queue_name
    OR old.priority IS NOT new.priority
BEGIN
    UPDATE job_counts SET n = n - 1, priority_sum = priority_sum - old.priority
    WHERE queue_name = old.queue_name AND state = old.state;
    UPDATE job_counts SET n = n + 1, priority_sum = priority_sum + new.priority
    WHERE queue_name = new.queue_name AND state = new.state;
    UPDATE job_completions
    SET n = CASE WHEN second = CAST(new.completed_at AS INTEGER) THEN n + 1 ELSE 1 END,
        second = CAST(new.completed_at AS INTEGER)
    WHERE new.state = 'completed' AND old.state IS NOT 'completed'
      AND queue_name = new.queue_name AND slot = CAST(new.completed_at AS INTEGER) % 64
      AND second <= CAST(new.completed_at AS INTEGER);
END;
DELETE FROM job_counts;
INSERT INTO job_counts (queue_name, state, n, priority_sum)
SELECT q.queue_name, s.state, count(j.id), coalesce(sum(j.priority), 0)
FROM (SELECT DISTINCT queue_name FROM job_queue) AS q CROSS JOIN job_count_states AS s
LEFT JOIN job_queue AS j ON j.queue_name = q.queue_name AND j.state = s.state
GROUP BY q.queue_name, s.state;
DELETE FROM job_completions;
INSERT INTO job_completions (queue_name, slot, second, n)
SELECT q.queue_name, g.slot, 0, 0
FROM (SELECT DISTINCT queue_name FROM job_queue) AS q CROSS JOIN job_completion_slots AS g;
UPDATE job_completions SET second = c.second, n = c.n
FROM (SELECT queue_name, CAST(completed_at AS INTEGER) AS second, count(*) AS n
      FROM job_queue
      WHERE state = 'completed' AND state != 'processing'
        AND completed_at >= CAST(strftime('%s', 'now') AS INTEGER) - 63
      GROUP BY 1, 2) AS c
WHERE job_completions.queue_name = c.queue_name AND job_completions.slot = c.second % 64;

-- name: ensure_counts
-- A queue's counter rows, before its first job is inserted (see migration 6).
INSERT OR IGNORE INTO job_counts (queue_name, state, n, priority_sum)
SELECT ?1, state, 0, 0 FROM job_count_states;

-- name: ensure_completions
INSERT OR IGNORE INTO job_completions (queue_name, slot, second, n)
SELECT ?1, slot, 0, 0 FROM job_completion_slots;

-- name: migration_7
-- Dashboard searches that stay fast at a million jobs: a tag, or a text in the exception,
-- through a full-text index with the trigram tokenizer (any substring of 3 characters or more).
-- job_text holds the searchable texts of the jobs that have any (most jobs, once completed,
-- have neither tags nor exception and cost nothing), under an INTEGER PRIMARY KEY so the
-- index's row ids survive a VACUUM; job_search indexes it (external content). Triggers keep
-- both in the transaction of every insert, exception change and delete.
CREATE TABLE IF NOT EXISTS job_text (
    n INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL UNIQUE,
    tags TEXT,
    exception TEXT
);
CREATE VIRTUAL TABLE IF NOT EXISTS job_search USING fts5(
    tags, exception, content = 'job_text', content_rowid = 'n', tokenize = 'trigram');
CREATE TRIGGER IF NOT EXISTS job_search_add AFTER INSERT ON job_text BEGIN
    INSERT INTO job_search (rowid, tags, exception) VALUES (new.n, new.tags, new.exception);
END;
CREATE TRIGGER IF NOT EXISTS job_search_drop AFTER DELETE ON job_text BEGIN
    INSERT INTO job_search (job_search, rowid, tags, exception)
    VALUES ('delete', old.n, old.tags, old.exception);
END;
CREATE TRIGGER IF NOT EXISTS job_text_add AFTER INSERT ON job_queue
WHEN new.tags IS NOT NULL OR new.exception IS NOT NULL BEGIN
    INSERT INTO job_text (job_id, tags, exception) VALUES (new.id, new.tags, new.exception);
END;
CREATE TRIGGER IF NOT EXISTS job_text_change AFTER UPDATE OF tags, exception ON job_queue
WHEN old.tags IS NOT new.tags OR old.exception IS NOT new.exception BEGIN
    DELETE FROM job_text WHERE job_id = old.id;
    INSERT INTO job_text (job_id, tags, exception)
    SELECT new.id, new.tags, new.exception
    WHERE new.tags IS NOT NULL OR new.exception IS NOT NULL;
END;
CREATE TRIGGER IF NOT EXISTS job_text_drop AFTER DELETE ON job_queue
WHEN old.tags IS NOT NULL OR old.exception IS NOT NULL BEGIN
    DELETE FROM job_text WHERE job_id = old.id;
END;
INSERT OR IGNORE INTO job_text (job_id, tags, exception)
SELECT id, tags, exception FROM job_queue WHERE tags IS NOT NULL OR exception IS NOT NULL;

-- name: migration_8
-- A new job's searchable texts enter job_text (and through it the full-text index) from the
-- driver, for the jobs that have any (`add_job_text`), no longer from a trigger on job_queue:
-- with the FTS5 table anywhere in an INSERT's trigger chain, SQLite opens the virtual table's
-- transaction for every row inserted, even when the trigger's condition is false (43 µs per
-- job, three times what the rest of a push costs). Changes and deletes keep their triggers.
DROP TRIGGER IF EXISTS job_text_add;

-- name: migration_9
-- Cheaper pushes: (priority) and (created_at), which no query uses (PostgreSQL and MySQL
-- dropped them in their migration 4), cost every push two index entries and two more pages
-- written to the WAL at its commit: a push's INSERT and COMMIT 93 -> 71 us of CPU.
DROP INDEX IF EXISTS idx_priority;
DROP INDEX IF EXISTS idx_created_at;

-- name: migration_10
-- The dashboard's Scheduled and Retrying views (`due`): the jobs waiting for a due time, by
-- due time. A pending job is in idx_scheduled only while it is due later than its last change
-- (pushed with a delay or an eta, snoozed): a job pushed, retried or handed back due at once
-- meets neither predicate, so those writes add no entry. `due` repeats the predicates.
CREATE INDEX IF NOT EXISTS idx_scheduled ON job_queue (available_at, id)
    WHERE state = 'pending' AND available_at > updated_at;
CREATE INDEX IF NOT EXISTS idx_retrying ON job_queue (available_at, id)
    WHERE state = 'retrying';
-- The failures grouped by error (`error_texts`): the failed jobs' exception texts with what the
-- GROUP BY reads, in text order, so grouping reads neither the table nor a sorter (24 instead
-- of 83 ms CPU over 30,000 failed jobs). It costs a copy of each failed job's exception; only
-- a job entering or leaving `failed` writes it.
CREATE INDEX IF NOT EXISTS idx_failed_text
    ON job_queue (exception, name, queue_name, id, failed_at, updated_at)
    WHERE state = 'failed';

-- name: migration_11
-- A list sorted by priority over a large filter (`sorted_search` with `within`: the newest
-- 10,000 matches, then the top of them by priority) reads the listing indexes alone: they
-- end with the priority. A priority change now rewrites the job's entries in them too (it
-- already did in idx_ready). Rebuilding them reads the table once each.
DROP INDEX IF EXISTS idx_state_id;
CREATE INDEX IF NOT EXISTS idx_state_id ON job_queue (state, id, priority)
    WHERE state != 'processing';
DROP INDEX IF EXISTS idx_queue_state_id;
CREATE INDEX IF NOT EXISTS idx_queue_state_id ON job_queue (queue_name, state, id, priority)
    WHERE state != 'processing';

-- name: migration_12
-- The failures grouped by error (`error_texts`) from a small index: each distinct exception
-- text of a failed job is stored once, in job_error_texts, and a failed job points at it
-- (exception_ref); idx_failed_ref holds what the grouping reads, by that number, in place of
-- idx_failed_text, which held a copy of every failed job's whole text (a traceback: kilobytes
-- per job). SQLite has no hash function, so the number of the text stands for its digest.
-- The triggers set the reference whenever a job enters `failed` or a failed job's text
-- changes, whichever statement does it (settling, recovery, restores, bulk statements): the
-- extra writes are a failure's, the many other state changes only test the WHEN clause. Only
-- failed jobs' references are kept (the index holds no others); texts no failed job points at
-- any more are deleted by `prune` (`prune_error_texts`). (The triggers test for the text
-- rather than INSERT OR IGNORE: the statement that fires a trigger imposes its own conflict
-- policy on the trigger's statements.) Existing failed jobs get theirs here:
-- one INSERT of their distinct texts and one UPDATE of those jobs (about 2 s per 30,000 failed
-- jobs on the development machine under load).
CREATE TABLE IF NOT EXISTS job_error_texts (
    n INTEGER PRIMARY KEY,
    exception TEXT NOT NULL UNIQUE
);
ALTER TABLE job_queue ADD COLUMN exception_ref INTEGER;
CREATE TRIGGER IF NOT EXISTS job_error_ref_insert AFTER INSERT ON job_queue
WHEN new.state = 'failed' AND new.exception IS NOT NULL BEGIN
    INSERT INTO job_error_texts (exception) SELECT new.exception
    WHERE new.exception IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM job_error_texts WHERE exception = new.exception);
    UPDATE job_queue SET exception_ref =
        (SELECT n FROM job_error_texts WHERE exception = new.exception)
    WHERE rowid = new.rowid;
END;
CREATE TRIGGER IF NOT EXISTS job_error_ref_update AFTER UPDATE OF state, exception ON job_queue
WHEN new.state = 'failed' AND (old.state IS NOT 'failed' OR old.exception IS NOT new.exception)
BEGIN
    INSERT INTO job_error_texts (exception) SELECT new.exception
    WHERE new.exception IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM job_error_texts WHERE exception = new.exception);
    UPDATE job_queue SET exception_ref =
        (SELECT n FROM job_error_texts WHERE exception = new.exception)
    WHERE rowid = new.rowid;
END;
INSERT OR IGNORE INTO job_error_texts (exception)
SELECT exception FROM job_queue WHERE state = 'failed' AND exception IS NOT NULL;
UPDATE job_queue SET exception_ref =
    (SELECT n FROM job_error_texts e WHERE e.exception = job_queue.exception)
WHERE state = 'failed';
CREATE INDEX IF NOT EXISTS idx_failed_ref
    ON job_queue (exception_ref, name, queue_name, id, failed_at, updated_at)
    WHERE state = 'failed';
DROP INDEX IF EXISTS idx_failed_text;

-- name: migration_13
-- Pruning reads the finished jobs by the time they finished, from two indexes that hold only
-- them, instead of scanning the table (a prune that found nothing read every row, holding the
-- write lock). A job enters one when it finishes: a push, a reservation, a retry or a
-- hand-back writes no entry in either.
CREATE INDEX IF NOT EXISTS idx_done_completed ON job_queue (completed_at)
    WHERE state = 'completed';
CREATE INDEX IF NOT EXISTS idx_done_failed ON job_queue (coalesce(failed_at, updated_at))
    WHERE state IN ('failed', 'cancelled');

-- name: prune_error_texts
-- The texts no failed job points at any more (pruned, retried, deleted), found from
-- idx_failed_ref.
DELETE FROM job_error_texts WHERE n NOT IN (
    SELECT exception_ref FROM job_queue WHERE state = 'failed' AND exception_ref IS NOT NULL);

-- name: add_job_text
-- The searchable texts of a job just inserted (only called when it has tags or an exception).
INSERT INTO job_text (job_id, tags, exception) VALUES (?, ?, ?);

-- name: search_text
-- Ids of the jobs whose tags or exception contain a text (an FTS5 query on one column), at
-- most as many as asked for.
SELECT t.job_id FROM job_search s JOIN job_text t ON t.n = s.rowid
WHERE job_search MATCH ? LIMIT ?;

-- name: insert_job
-- One new job; a duplicate idempotency key inserts nothing.
INSERT OR FAIL INTO job_queue (id, queue_name, name, payload, state, priority, max_attempts,
    timeout_seconds, delay_seconds, available_at, dependencies, tags, created_at, updated_at,
    idempotency_key, batch_id, idempotency_mode, idempotency_window)
VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (idempotency_key) DO NOTHING;

-- name: insert_plain_job
-- One new job with no idempotency key, tags, dependencies or batch: those columns keep their
-- defaults (NULL, 'exists', 0), so nothing NULL is bound and nothing can conflict on the key.
INSERT OR FAIL INTO job_queue (id, queue_name, name, payload, state, priority, max_attempts,
    timeout_seconds, delay_seconds, available_at, created_at, updated_at)
VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?);

-- name: expire_idempotency_key
-- A key whose "window" after finishing has passed no longer blocks a new job.
UPDATE job_queue SET idempotency_key = NULL
WHERE idempotency_key = ? AND idempotency_expires_at <= ?;

-- name: id_by_idempotency_key
SELECT id FROM job_queue WHERE idempotency_key = ?;

-- name: insert_dependency
INSERT OR IGNORE INTO job_dependencies (job_id, depends_on) VALUES (?, ?);

-- name: mark_satisfied_edges
-- Edges to dependencies that are completed (or do not exist) are satisfied from the start.
UPDATE job_dependencies SET satisfied = 1
WHERE job_id = ? AND depends_on NOT IN (SELECT id FROM job_queue WHERE state != 'completed');

-- name: count_waiting
-- How many of a job's dependencies are not satisfied yet.
UPDATE job_queue SET waiting_on = (
    SELECT count(*) FROM job_dependencies d WHERE d.job_id = job_queue.id AND d.satisfied = 0)
WHERE id = ?;

-- name: reserve
-- Claim the best ready jobs: highest priority, then oldest due, then oldest id. Keys of
-- "until started" jobs are released by `release_started_keys` (only when a row has a key:
-- naming idempotency_key here would rewrite its unique index entry for every job).
UPDATE OR FAIL job_queue
SET state = 'processing', attempts = attempts + 1, lease_owner = ?, lease_expires_at = ?,
    lease_epoch = lease_epoch + 1, started_at = ?, updated_at = ?
WHERE id IN (
    SELECT id FROM job_queue
    WHERE state IN ('pending', 'retrying') AND waiting_on = 0
      AND queue_name IN ({queues}) AND available_at <= ?
    ORDER BY priority DESC, available_at, id
    LIMIT ?)
RETURNING {columns};

-- name: ready_head
-- What `reserve` would claim now, read by a worker waiting to start (`warm`): the rows and
-- index pages its first reservation is about to touch.
SELECT {columns} FROM job_queue
WHERE state IN ('pending', 'retrying') AND waiting_on = 0
  AND queue_name IN ({queues}) AND available_at <= ?
ORDER BY priority DESC, available_at, id
LIMIT ?;

-- name: release_started_keys
UPDATE job_queue SET idempotency_key = NULL
WHERE id IN ({ids}) AND idempotency_mode IN ('started', 'debounce')
RETURNING id;

-- name: reserve_job
-- Claim one given job if it is ready now.
UPDATE OR FAIL job_queue
SET state = 'processing', attempts = attempts + 1, lease_owner = ?, lease_expires_at = ?,
    lease_epoch = lease_epoch + 1, started_at = ?, updated_at = ?,
    idempotency_key = CASE WHEN idempotency_mode IN ('started', 'debounce') THEN NULL
        ELSE idempotency_key END
WHERE id = ? AND state IN ('pending', 'retrying') AND waiting_on = 0 AND available_at <= ?
RETURNING {columns};

-- name: replace_payload
UPDATE job_queue SET payload = ?, available_at = ?, delay_seconds = ?, updated_at = ?
WHERE id = ? AND state = 'pending';

-- name: extend_lease
UPDATE job_queue SET lease_expires_at = ?, updated_at = ?
WHERE id = ? AND lease_epoch = ? AND state = 'processing';

-- name: lease_state
SELECT state, lease_epoch FROM job_queue WHERE id = ?;

-- name: complete
UPDATE job_queue
SET state = 'completed', result = ?, completed_at = ?, updated_at = ?, progress = 100,
    lease_owner = NULL, lease_expires_at = NULL, exception = NULL,
    idempotency_key = CASE WHEN idempotency_mode = 'finished' THEN NULL ELSE idempotency_key END,
    idempotency_expires_at = CASE WHEN idempotency_mode = 'window' THEN ? + idempotency_window
        ELSE idempotency_expires_at END
WHERE id = ? AND lease_epoch = ? AND state = 'processing';

-- name: complete_many
-- A batch of completions in one statement: `{rows}` is one `(?, ?, ?)` (id, lease epoch,
-- result) per job, padded with NULL rows that match nothing (a few statement texts for every
-- batch size). Nothing here calls a function, directly or in a trigger it fires (a function
-- may raise, and so may the full-text table that a change of `exception` reaches): a
-- statement that can abort half-way inside BEGIN keeps a statement journal, a copy of every
-- page it changes, and past 64 KiB (about 16 pages: a batch of 100) SQLite writes that copy
-- to a new file in /var/tmp, once per batch. What needs a function is left to
-- `close_attempts`, for the few rows it returns as needing it: a history to close (the
-- job failed before; its owner is kept for that entry) or an exception to clear (of an
-- earlier attempt, or a postponement's reason). Idempotency columns are left to
-- `finish_keys`, run only for the rows that have a key.
UPDATE OR FAIL job_queue
SET state = 'completed', result = t.column3, completed_at = ?, updated_at = ?,
    progress = 100, lease_expires_at = NULL,
    lease_owner = CASE WHEN job_queue.attempt_history IS NULL THEN NULL
        ELSE job_queue.lease_owner END
FROM (VALUES {rows}) AS t
WHERE job_queue.id = t.column1 AND job_queue.lease_epoch = t.column2
  AND +job_queue.state = 'processing'
RETURNING job_queue.id, job_queue.lease_epoch, job_queue.idempotency_key IS NOT NULL,
    job_queue.attempt_history IS NOT NULL OR job_queue.exception IS NOT NULL;

-- name: close_attempts
-- The rest of `complete_many` for the jobs it returned as needing it: the history gets its
-- closing entry (none is started), the exception is cleared, and the owner kept for the
-- entry is let go.
UPDATE job_queue
SET exception = NULL, lease_owner = NULL,
    attempt_history = CASE WHEN attempt_history IS NULL THEN NULL
        ELSE json_insert(CASE WHEN json_valid(attempt_history) THEN attempt_history ELSE '[]'
            END, '$[#]', json_object('attempt', attempts, 'worker', lease_owner,
            'started_at', started_at, 'ended_at', ?, 'outcome', 'completed', 'error', NULL)) END
WHERE id IN ({ids}) AND state = 'completed';

-- name: finish_keys
UPDATE job_queue
SET idempotency_key = CASE WHEN idempotency_mode = 'finished' THEN NULL ELSE idempotency_key END,
    idempotency_expires_at = CASE WHEN idempotency_mode = 'window' THEN ? + idempotency_window
        ELSE idempotency_expires_at END
WHERE id IN ({ids}) AND idempotency_mode IN ('finished', 'window');

-- name: release_dependents
-- A completed (or, by policy, failed) job unblocks the jobs that wait on it, once per edge.
UPDATE job_queue SET waiting_on = waiting_on - 1
WHERE waiting_on > 0
  AND id IN (SELECT job_id FROM job_dependencies WHERE depends_on = ? AND satisfied = 0)
RETURNING id, waiting_on;

-- name: has_dependents
-- Does any of these jobs have a dependent waiting on it? (usually not: skip the release)
SELECT 1 FROM job_dependencies WHERE depends_on IN ({ids}) AND satisfied = 0 LIMIT 1;

-- name: satisfy_edges
UPDATE job_dependencies SET satisfied = 1 WHERE depends_on = ? AND satisfied = 0;

-- name: cancel_dependents
-- A failed or cancelled job takes its waiting dependents down with it.
UPDATE job_queue SET state = 'cancelled', exception = ?, updated_at = ?,
    idempotency_key = CASE WHEN idempotency_mode = 'finished' THEN NULL ELSE idempotency_key END,
    idempotency_expires_at = CASE WHEN idempotency_mode = 'window' THEN ? + idempotency_window
        ELSE idempotency_expires_at END
WHERE state = 'pending' AND id IN (SELECT job_id FROM job_dependencies WHERE depends_on = ?)
RETURNING id;

-- name: fail
-- The attempt ends in error: retry later or dead-letter, and record it in the history.
UPDATE OR FAIL job_queue
SET state = ?, exception = ?, available_at = ?, failed_at = ?, updated_at = ?,
    lease_owner = NULL, lease_expires_at = NULL,
    idempotency_key = CASE WHEN idempotency_mode = 'finished' AND ? = 'failed'
        THEN NULL ELSE idempotency_key END,
    idempotency_expires_at = CASE WHEN idempotency_mode = 'window' AND ? = 'failed'
        THEN ? + idempotency_window ELSE idempotency_expires_at END,
    attempt_history = json_insert(CASE WHEN json_valid(attempt_history) THEN attempt_history ELSE '[]' END, '$[#]', json_object(
        'attempt', attempts, 'worker', lease_owner, 'started_at', started_at, 'ended_at', ?,
        'outcome', ?, 'error', ?))
WHERE id = ? AND lease_epoch = ? AND state = 'processing';

-- name: release
-- Hand a job back unrun: the attempt it used is refunded.
UPDATE OR FAIL job_queue
SET state = 'pending', attempts = max(attempts - 1, 0), available_at = ?, updated_at = ?,
    exception = coalesce(?, exception), lease_owner = NULL, lease_expires_at = NULL
WHERE id = ? AND lease_epoch = ? AND state = 'processing';

-- name: set_progress
UPDATE job_queue SET progress = ?, updated_at = ?
WHERE id = ? AND lease_epoch = ? AND state = 'processing';

-- name: recover_expired
-- Leases that ran out: retry if attempts remain, else dead-letter.
UPDATE OR FAIL job_queue
SET state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'retrying' END,
    failed_at = CASE WHEN attempts >= max_attempts THEN ? ELSE failed_at END,
    exception = 'LeaseExpired: worker ' || coalesce(lease_owner, '?')
        || ' stopped renewing its lease (attempt ' || attempts || ' of ' || max_attempts || ')',
    available_at = ?, updated_at = ?, lease_owner = NULL, lease_expires_at = NULL,
    idempotency_key = CASE WHEN idempotency_mode = 'finished' AND attempts >= max_attempts
        THEN NULL ELSE idempotency_key END,
    idempotency_expires_at = CASE WHEN idempotency_mode = 'window' AND attempts >= max_attempts
        THEN ? + idempotency_window ELSE idempotency_expires_at END,
    attempt_history = json_insert(CASE WHEN json_valid(attempt_history) THEN attempt_history ELSE '[]' END, '$[#]', json_object(
        'attempt', attempts, 'worker', lease_owner, 'started_at', started_at, 'ended_at', ?,
        'outcome', CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'retrying' END,
        'error', 'LeaseExpired: worker ' || coalesce(lease_owner, '?')
        || ' stopped renewing its lease (attempt ' || attempts || ' of ' || max_attempts || ')'))
WHERE state = 'processing' AND lease_expires_at < ?
RETURNING id;

-- name: recover_worker
-- A worker process is known to be dead: the jobs it had started (all it held when the first
-- parameter after the times is 1, else those in the JSON list) move at once as an expired lease
-- would, with the cause its supervisor saw. State and owner fence it.
UPDATE OR FAIL job_queue
SET state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'retrying' END,
    failed_at = CASE WHEN attempts >= max_attempts THEN ? ELSE failed_at END,
    exception = ? || ' (attempt ' || attempts || ' of ' || max_attempts || ')',
    available_at = ?, updated_at = ?, lease_owner = NULL, lease_expires_at = NULL,
    idempotency_key = CASE WHEN idempotency_mode = 'finished' AND attempts >= max_attempts
        THEN NULL ELSE idempotency_key END,
    idempotency_expires_at = CASE WHEN idempotency_mode = 'window' AND attempts >= max_attempts
        THEN ? + idempotency_window ELSE idempotency_expires_at END,
    attempt_history = json_insert(CASE WHEN json_valid(attempt_history) THEN attempt_history ELSE '[]' END, '$[#]', json_object(
        'attempt', attempts, 'worker', lease_owner, 'started_at', started_at, 'ended_at', ?,
        'outcome', CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'retrying' END,
        'error', ? || ' (attempt ' || attempts || ' of ' || max_attempts || ')'))
WHERE state = 'processing' AND lease_owner = ?
  AND (? OR id IN (SELECT value FROM json_each(?)))
RETURNING id;

-- name: release_worker
-- The rest of a dead worker's jobs (reserved, never started) go back unrun, attempt refunded.
UPDATE OR FAIL job_queue
SET state = 'pending', attempts = max(attempts - 1, 0), available_at = ?, updated_at = ?,
    lease_owner = NULL, lease_expires_at = NULL
WHERE state = 'processing' AND lease_owner = ?
RETURNING id;

-- name: next_due
-- When the next waiting job becomes due (for the idle wait). Named index: left to itself the
-- planner walked idx_queue_id, every job the queue ever kept (10-30 ms at 20,000 finished
-- jobs, on every idle wait), instead of the ready index (0.02 ms).
SELECT min(available_at) FROM job_queue INDEXED BY idx_ready
WHERE state IN ('pending', 'retrying') AND waiting_on = 0 AND queue_name IN ({queues});

-- name: cancel
UPDATE job_queue SET state = 'cancelled', exception = ?, updated_at = ?,
    lease_owner = NULL, lease_expires_at = NULL,
    idempotency_key = CASE WHEN idempotency_mode = 'finished' THEN NULL ELSE idempotency_key END,
    idempotency_expires_at = CASE WHEN idempotency_mode = 'window' THEN ? + idempotency_window
        ELSE idempotency_expires_at END
WHERE id = ? AND state IN ('pending', 'retrying', 'processing');

-- name: retry
UPDATE job_queue
SET state = 'pending', attempts = 0, available_at = ?, updated_at = ?, failed_at = NULL,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = ? AND state IN ('failed', 'cancelled');

-- name: set_priority
UPDATE job_queue SET priority = ?, updated_at = ?
WHERE id = ? AND state IN ('pending', 'retrying', 'processing');

-- name: delete
DELETE FROM job_queue WHERE id = ?;

-- name: delete_edges
DELETE FROM job_dependencies WHERE job_id = ?;

-- name: bulk_retry
-- `retry` for a page of ids (a JSON array) in one statement (Driver.apply_many).
UPDATE job_queue
SET state = 'pending', attempts = 0, available_at = :now, updated_at = :now, failed_at = NULL,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id IN (SELECT value FROM json_each(:ids)) AND state IN ('failed', 'cancelled')
RETURNING id;

-- name: bulk_cancel
UPDATE job_queue SET state = 'cancelled', exception = :reason, updated_at = :now,
    lease_owner = NULL, lease_expires_at = NULL,
    idempotency_key = CASE WHEN idempotency_mode = 'finished' THEN NULL ELSE idempotency_key END,
    idempotency_expires_at = CASE WHEN idempotency_mode = 'window' THEN :now + idempotency_window
        ELSE idempotency_expires_at END
WHERE id IN (SELECT value FROM json_each(:ids))
  AND state IN ('pending', 'retrying', 'processing')
RETURNING id;

-- name: bulk_priority
UPDATE job_queue SET priority = :priority, updated_at = :now
WHERE id IN (SELECT value FROM json_each(:ids))
  AND state IN ('pending', 'retrying', 'processing')
RETURNING id;

-- name: bulk_delete_edges
-- The edges to the own dependencies of the jobs `bulk_delete` is about to delete.
DELETE FROM job_dependencies
WHERE job_id IN (SELECT id FROM job_queue
                 WHERE id IN (SELECT value FROM json_each(:ids)) AND state != 'processing');

-- name: bulk_delete
-- `delete` for a page of ids, running jobs left alone.
DELETE FROM job_queue
WHERE id IN (SELECT value FROM json_each(:ids)) AND state != 'processing'
RETURNING id;

-- name: stats_counts
-- The counters (migration 6): a few rows whatever the number of jobs.
SELECT queue_name, state, n, priority_sum FROM job_counts WHERE n != 0;

-- name: stats_recent
SELECT queue_name, sum(n) FROM job_completions WHERE second >= ? GROUP BY queue_name;

-- name: stats_oldest
-- The earliest due time of a queue's ready jobs (pending or retrying, waiting on no dependency),
-- from idx_ready without reading the backlog: one look-up per priority level in use (a loose
-- index scan: the levels are walked from the highest down, each the first entry below the last).
WITH RECURSIVE level(priority) AS (
    SELECT (SELECT priority FROM job_queue INDEXED BY idx_ready
            WHERE queue_name = ?1 AND state IN ('pending', 'retrying') AND waiting_on = 0
            ORDER BY priority DESC LIMIT 1)
    UNION ALL
    SELECT (SELECT priority FROM job_queue INDEXED BY idx_ready
            WHERE queue_name = ?1 AND state IN ('pending', 'retrying') AND waiting_on = 0
              AND priority < level.priority
            ORDER BY priority DESC LIMIT 1)
    FROM level WHERE level.priority IS NOT NULL)
SELECT min((SELECT available_at FROM job_queue INDEXED BY idx_ready
            WHERE queue_name = ?1 AND state IN ('pending', 'retrying') AND waiting_on = 0
              AND priority = level.priority
            ORDER BY priority DESC, available_at LIMIT 1))
FROM level WHERE level.priority IS NOT NULL;

-- name: prune
-- At most `limit` (the third parameter; -1: no limit) per call, so a large prune is many short
-- write transactions that workers' reservations interleave with. Each half reads a range of
-- its index (migration 13): the terms repeat the indexes' predicates and expressions.
DELETE FROM job_queue WHERE rowid IN (
    SELECT rowid FROM job_queue WHERE state = 'completed' AND completed_at < ?1
    UNION ALL
    SELECT rowid FROM job_queue
    WHERE state IN ('failed', 'cancelled') AND coalesce(failed_at, updated_at) < ?2
    LIMIT ?3)
RETURNING id;

-- name: prune_count
SELECT (SELECT count(*) FROM job_queue WHERE state = 'completed' AND completed_at < ?1)
     + (SELECT count(*) FROM job_queue
        WHERE state IN ('failed', 'cancelled') AND coalesce(failed_at, updated_at) < ?2);

-- name: prune_edges
DELETE FROM job_dependencies WHERE job_id IN (SELECT value FROM json_each(?));

-- name: lock_acquire
INSERT INTO taskqueue_locks (name, owner, expires_at) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE taskqueue_locks.owner = excluded.owner OR taskqueue_locks.expires_at < ?;

-- name: lock_release
DELETE FROM taskqueue_locks WHERE name = ? AND owner = ?;

-- name: counter_incr
INSERT INTO taskqueue_counters (key, value, expires_at) VALUES (?, ?, ?)
ON CONFLICT (key) DO UPDATE SET
    value = CASE WHEN taskqueue_counters.expires_at <= ? THEN excluded.value
                 ELSE taskqueue_counters.value + excluded.value END,
    expires_at = CASE WHEN taskqueue_counters.expires_at <= ? THEN excluded.expires_at
                      ELSE taskqueue_counters.expires_at END
RETURNING value;

-- name: registry_put
INSERT INTO taskqueue_registry (kind, key, data, expires_at) VALUES (?, ?, ?, ?)
ON CONFLICT (kind, key) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at;

-- name: registry_list
SELECT data FROM taskqueue_registry WHERE kind = ? AND expires_at > ? ORDER BY key;

-- name: registry_remove
DELETE FROM taskqueue_registry WHERE kind = ? AND key = ?;

-- name: registry_expire
DELETE FROM taskqueue_registry WHERE expires_at <= ?;

-- name: restore_job
-- A complete record copied from another store; an existing id is left alone.
INSERT INTO job_queue (id, queue_name, name, payload, state, priority, attempts, max_attempts,
    timeout_seconds, delay_seconds, available_at, created_at, updated_at, dependencies, tags,
    started_at, completed_at, failed_at, exception, result, progress, idempotency_key,
    batch_id, lease_owner, lease_expires_at, lease_epoch)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING;
