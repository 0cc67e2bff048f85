-- redis_common.lua: helpers for the per-queue scripts (it is not a script itself). Every such
-- script gets this header (up to the first blank line) and the helpers below that it uses
-- (_redis_keys.script_source): one helper per blank-line-separated block.
--
-- KEYS[1] is the queue's key base "<prefix>:{<queue>}"; every key a script builds from it shares
-- the {<queue>} hash tag, hence one Cluster slot. Times are integer microseconds from the
-- server's TIME (the store's clock), stored in job hashes as decimal strings.
local base = KEYS[1]
local function k(name) return base .. ':' .. name end
local function jk(id) return base .. ':job:' .. id end
-- An integer as decimal text: '%d' (a third of the server's instructions of '%.0f', which
-- formats through the floating-point printer), '%.0f' outside the range of a C long.
local function fmt(n)
  n = math.floor(n)
  if n > -9e18 and n < 9e18 then return string.format('%d', n) end
  return string.format('%.0f', n)
end
local clock = redis.call('TIME')
local NOW = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local NOW_S = fmt(NOW)

-- Ready order: priority (higher first, 0..1000), then available_at (ms), ties by id (member).
local function ready_score(priority, avail_us)
  local p = math.max(0, math.min(1000, tonumber(priority) or 0))
  return fmt((1000 - p) * 4398046511104 + math.floor(avail_us / 1000))
end

-- Take a waiting job out of every reservation index (ready, delayed, parked).
local function unplace(id)
  redis.call('ZREM', k('ready'), id)
  redis.call('ZREM', k('delayed'), id)
  redis.call('SREM', k('parked'), id)
end

-- File a waiting job that is in no reservation index yet: parked while dependencies are
-- unmet, delayed until avail (available_at), else ready. Returns 1 when it is ready now.
local function file(id, avail, priority)
  if redis.call('SCARD', k('waits:' .. id)) > 0 then
    redis.call('SADD', k('parked'), id)
    return 0
  end
  if avail <= NOW then
    redis.call('ZADD', k('ready'), ready_score(priority, avail), id)
    return 1
  end
  redis.call('ZADD', k('delayed'), fmt(avail), id)
  return 0
end

-- File a pending/retrying job where reserve finds it (see file), wherever it was filed before.
local function place(id)
  unplace(id)
  local v = redis.call('HMGET', jk(id), 'available_at', 'priority')
  return file(id, tonumber(v[1]), v[2])
end

-- Move a job between the per-state indexes (sorted sets named after the state).
local function set_state(id, old, new, score)
  if old then redis.call('ZREM', k(old), id) end
  redis.call('ZADD', k(new), fmt(score), id)
  redis.call('HSET', jk(id), 'state', new)
end

-- Wake up to n blocked waiters (a hint; the list stays short: trimmed back to 64 only when
-- LPUSH says it grew past 128, so a push costs one command here, amortized).
local function wake(n)
  if n <= 0 then return end
  if n == 1 then   -- a single push: no token table
    if redis.call('LPUSH', k('wake'), '1') > 128 then redis.call('LTRIM', k('wake'), 0, 63) end
    return
  end
  local tokens = {}
  for i = 1, math.min(n, 64) do tokens[i] = '1' end
  if redis.call('LPUSH', k('wake'), unpack(tokens)) > 128 then
    redis.call('LTRIM', k('wake'), 0, 63)
  end
end

-- The fencing guard of every settle call.
local function holds(id, epoch)
  local v = redis.call('HMGET', jk(id), 'state', 'lease_epoch')
  return v[1] == 'processing' and v[2] == epoch
end

-- Append the attempt ending now to the job's attempt history (a JSON array in the hash field
-- attempt_history; times in seconds): its number, worker, start, end, outcome and error. Call
-- it before the lease owner is cleared. The array is extended as text, never decoded.
local function add_attempt(key, outcome, err)
  local v = redis.call('HMGET', key, 'attempt_history', 'attempts', 'lease_owner', 'started_at')
  local entry = cjson.encode({attempt = tonumber(v[2]) or 0, worker = v[3] or cjson.null,
    started_at = v[4] and tonumber(v[4]) / 1000000 or cjson.null, ended_at = NOW / 1000000,
    outcome = outcome, error = err or cjson.null})
  local history = v[1] and (string.sub(v[1], 1, -2) .. ',' .. entry .. ']') or ('[' .. entry .. ']')
  redis.call('HSET', key, 'attempt_history', history)
end

-- A dependency of a local job is met: forget it; place the job once nothing is left. Each
-- edge is satisfied once: a parent already forgotten changes nothing. Returns 1 when the job
-- is ready now (else 0), and whether this call left it waiting on nothing.
local function unblock(child, parent)
  if redis.call('SREM', k('waits:' .. child), parent) == 0 then return 0, false end
  if redis.call('SCARD', k('waits:' .. child)) > 0 then return 0, false end
  local state = redis.call('HGET', jk(child), 'state')
  if state == 'pending' or state == 'retrying' then return place(child), true end
  return 0, true
end

-- Idempotency keys. A queue's claims are the hash k('idem') (key -> id), in the queue's slot: a
-- key is unique within its queue. A script that frees a key drops the job's `idempotency_key`
-- field (remembering it in `idempotency_claim` for drop) or, for mode "window", sets
-- `idempotency_expires_at`; the claim itself goes at the next push of that key (live_claim) or
-- with the job (drop). Jobs stored without `idempotency_mode` have mode "exists".
local function free_key(id, key)
  redis.call('HSET', jk(id), 'idempotency_claim', key)
  redis.call('HDEL', jk(id), 'idempotency_key')
end

-- Finished for good (completed, failed, cancelled): mode "finished" stops blocking now, mode
-- "window" once idempotency_window seconds have passed. v: the job's idempotency_key,
-- idempotency_mode and idempotency_window when the caller has read them already.
local function key_on_finish(id, v)
  v = v or redis.call('HMGET', jk(id), 'idempotency_key', 'idempotency_mode',
    'idempotency_window')
  if not v[1] then return end
  if v[2] == 'finished' then
    free_key(id, v[1])
  elseif v[2] == 'window' then
    local window = math.floor((tonumber(v[3]) or 0) * 1000000)
    redis.call('HSET', jk(id), 'idempotency_expires_at', fmt(NOW + window))
  end
end

-- The job of this queue that holds idempotency key `key` and still blocks duplicates, or nil;
-- a stale claim (holder gone, key freed, window expired) is removed on the way, and an expired
-- holder loses its key field as the SQL drivers' push NULLs it.
local function live_claim(key)
  local holder = redis.call('HGET', k('idem'), key)
  if not holder then return nil end
  local v = redis.call('HMGET', jk(holder), 'idempotency_key', 'idempotency_expires_at')
  if v[1] == key then
    local expires = tonumber(v[2])
    if not expires or expires > NOW then return holder end
    redis.call('HDEL', jk(holder), 'idempotency_key')
  end
  redis.call('HDEL', k('idem'), key)
  return nil
end

-- A job's hash as a table (one HGETALL, cheaper than naming every field); nil when the job
-- does not exist.
local function read_job(id)
  local flat = redis.call('HGETALL', jk(id))
  if #flat == 0 then return nil end
  local v = {}
  for i = 1, #flat, 2 do v[flat[i]] = flat[i + 1] end
  return v
end

-- A stored integer (times, counters) as a number for a reply; absent stays false (nil).
local function num(v) return v and tonumber(v) or false end

-- Run `cmd key item...` over a list in slices (Lua's unpack has a stack limit).
local function bulk(cmd, key, items)
  for i = 1, #items, 1000 do
    redis.call(cmd, key, unpack(items, i, math.min(i + 999, #items)))
  end
end

-- Take one ready job (state pending or retrying, out of the reservation indexes; v its
-- read_job) for a worker: processing, attempts + 1, lease_epoch + 1, a lease until NOW + lease.
-- The caller moves it from its state set to 'processing' (set_state, or in bulk). Returns the
-- reply row of reserve and reserve_job: the fields in JobRecord's order (_redis_codec.FIELDS),
-- times and counters as integers, absent fields nil.
local function take(id, v, worker, lease)
  local attempts, epoch = (tonumber(v.attempts) or 0) + 1, (tonumber(v.lease_epoch) or 0) + 1
  local expires = NOW + lease
  redis.call('HSET', jk(id), 'state', 'processing', 'attempts', fmt(attempts),
    'lease_epoch', fmt(epoch), 'lease_owner', worker, 'lease_expires_at', fmt(expires),
    'started_at', NOW_S, 'updated_at', NOW_S)
  -- Modes "started" and "debounce" stop blocking duplicates once the job is reserved.
  local key = v.idempotency_key or false
  local mode = v.idempotency_mode
  if key and (mode == 'started' or mode == 'debounce') then
    free_key(id, key)
    key = false
  end
  return {v.id, v.queue_name, v.name, v.payload or false, 'processing', num(v.priority),
    attempts, num(v.max_attempts), num(v.timeout_seconds), v.delay_seconds or false,
    num(v.available_at), num(v.created_at), NOW, v.dependencies or false, v.tags or false, NOW,
    num(v.completed_at), num(v.failed_at), v.exception or false, v.result or false,
    v.progress or false, key, v.batch_id or false, worker, expires, epoch}
end

-- Microseconds until this queue's earliest delayed job falls due (<= 0: it has), by this
-- queue's server clock; false when no job waits for a time.
local function next_due()
  local head = redis.call('ZRANGE', k('delayed'), 0, 0, 'WITHSCORES')
  if #head == 0 then return false end
  return tonumber(head[2]) - NOW
end

-- Wake tokens hint at ready work; once none is left they would only cause idle spins.
local function drain_wake()
  if redis.call('ZCARD', k('ready')) == 0 then redis.call('DEL', k('wake')) end
end

-- Complete one job of this queue under the fencing guard (processing -> completed; the caller
-- moves it between the state sets), then release its dependents here (each edge once: one
-- already satisfied by a failed parent let run anyway is not counted again). result: '' for
-- none, else '=' .. result. Returns 1 (done), 0 (the lease is not held) or -1 (no such job
-- here); how many dependents are ready now; and the dependents living in other queues.
local function complete_job(id, epoch, result)
  local key = jk(id)
  local v = redis.call('HMGET', key, 'state', 'lease_epoch', 'idempotency_key',
    'idempotency_mode', 'idempotency_window', 'attempt_history')
  if not v[1] then return -1, 0, {} end
  if v[1] ~= 'processing' or v[2] ~= epoch then return 0, 0, {} end
  if v[6] then add_attempt(key, 'completed', nil) end  -- it failed before: close the history
  local now = NOW_S
  if result == '' then
    redis.call('HSET', key, 'state', 'completed', 'completed_at', now, 'updated_at', now,
      'progress', '100')
    redis.call('HDEL', key, 'result', 'lease_owner', 'lease_expires_at', 'exception')
  else
    redis.call('HSET', key, 'state', 'completed', 'completed_at', now, 'updated_at', now,
      'progress', '100', 'result', string.sub(result, 2))
    redis.call('HDEL', key, 'lease_owner', 'lease_expires_at', 'exception')
  end
  key_on_finish(id, {v[3], v[4], v[5]})
  local woke, remote = 0, {}
  local dependents = redis.call('SMEMBERS', k('dependents:' .. id))
  if #dependents > 0 then
    for _, child in ipairs(dependents) do
      if redis.call('EXISTS', jk(child)) == 1 then
        woke = woke + unblock(child, id)
      else
        remote[#remote + 1] = child
      end
    end
    redis.call('DEL', k('dependents:' .. id))
  end
  return 1, woke, remote
end

-- Record the dependencies of a freshly inserted job (lists of ids, nil for none). Same-queue
-- parents are checked now; parents in other queues count as unmet until the driver hears back
-- from their queue. Returns true when the job has no dependency at all (it can be filed
-- without a look at waits:<id>). Only jobs stored with a `dependencies` field get here with
-- ids (push and restore store the field with the lists): reserve relies on that.
local function add_waits(id, local_deps, remote_deps)
  if (not local_deps or #local_deps == 0) and (not remote_deps or #remote_deps == 0) then
    return true
  end
  -- children:<parent> (in the child's queue) lists the child for as long as the child exists,
  -- met or not: the index the dashboard walks a workflow downward with
  for _, dep in ipairs(local_deps or {}) do redis.call('SADD', k('children:' .. dep), id) end
  for _, dep in ipairs(remote_deps or {}) do redis.call('SADD', k('children:' .. dep), id) end
  for _, dep in ipairs(local_deps or {}) do
    local state = redis.call('HGET', jk(dep), 'state')
    if state and state ~= 'completed' then
      redis.call('SADD', k('waits:' .. id), dep)
      redis.call('SADD', k('dependents:' .. dep), id)
    end
  end
  for _, dep in ipairs(remote_deps or {}) do
    redis.call('SADD', k('waits:' .. id), dep)
  end
  return false
end

-- Remove a job and everything filed under it (delete, prune), its idempotency claim included.
local function drop(id)
  local v = redis.call('HMGET', jk(id), 'state', 'idempotency_key', 'idempotency_claim',
    'dependencies')
  if not v[1] then return 0 end
  if v[4] then
    for _, dep in ipairs(cjson.decode(v[4])) do redis.call('SREM', k('children:' .. dep), id) end
  end
  redis.call('ZREM', k(v[1]), id)
  unplace(id)
  local claim = v[2] or v[3]
  if claim and redis.call('HGET', k('idem'), claim) == id then
    redis.call('HDEL', k('idem'), claim)
  end
  redis.call('DEL', jk(id), k('waits:' .. id), k('dependents:' .. id), k('children:' .. id))
  return 1
end

-- Read one encoded record (restore) from ARGV at pos: a count n, n field/value pairs, then the
-- job's same-queue and other-queue dependency lists (JSON). Returns fields, flat pairs, deps
-- (decoded), next.
local function read_record(pos)
  local n = tonumber(ARGV[pos])
  local fields, flat = {}, {}
  for j = 1, n do
    local f, v = ARGV[pos + 2 * j - 1], ARGV[pos + 2 * j]
    fields[f] = v
    flat[#flat + 1] = f
    flat[#flat + 1] = v
  end
  local after = pos + 2 * n + 1
  return fields, flat, cjson.decode(ARGV[after]), cjson.decode(ARGV[after + 1]), after + 2
end
