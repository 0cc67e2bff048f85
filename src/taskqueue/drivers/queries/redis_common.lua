-- redis_common.lua: helpers prepended to every per-queue script (it is not a script itself).
--
-- KEYS[1] is the queue's key base "<prefix>:{<queue>}"; every key a script builds from it shares
-- the {<queue>} hash tag, hence one Cluster slot. Times are integer microseconds from the
-- server's TIME (the store's clock), stored in job hashes as decimal strings.
local base = KEYS[1]
local function k(name) return base .. ':' .. name end
local function jk(id) return base .. ':job:' .. id end

local function clock_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local NOW = clock_us()

local function fmt(n) return string.format('%.0f', math.floor(n)) end

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

-- File a pending/retrying job where reserve finds it: parked while dependencies are unmet,
-- delayed until available_at, else ready. Returns 1 when the job is ready now.
local function place(id)
  unplace(id)
  if redis.call('SCARD', k('waits:' .. id)) > 0 then
    redis.call('SADD', k('parked'), id)
    return 0
  end
  local v = redis.call('HMGET', jk(id), 'available_at', 'priority')
  local avail = tonumber(v[1])
  if avail <= NOW then
    redis.call('ZADD', k('ready'), ready_score(v[2], avail), id)
    return 1
  end
  redis.call('ZADD', k('delayed'), fmt(avail), id)
  return 0
end

-- Move a job between the per-state indexes (sorted sets named after the state).
local function set_state(id, old, new, score)
  if old then redis.call('ZREM', k(old), id) end
  redis.call('ZADD', k(new), fmt(score), id)
  redis.call('HSET', jk(id), 'state', new)
end

-- Wake up to n blocked waiters (a hint; the list stays short).
local function wake(n)
  if n <= 0 then return end
  local tokens = {}
  for i = 1, math.min(n, 64) do tokens[i] = '1' end
  redis.call('LPUSH', k('wake'), unpack(tokens))
  redis.call('LTRIM', k('wake'), 0, 63)
end

-- The fencing guard of every settle call.
local function holds(id, epoch)
  local v = redis.call('HMGET', jk(id), 'state', 'lease_epoch')
  return v[1] == 'processing' and v[2] == epoch
end

-- A dependency of a local job is met: forget it; place the job once nothing is left.
local function unblock(child, parent)
  if redis.call('SREM', k('waits:' .. child), parent) == 0 then return 0 end
  if redis.call('SCARD', k('waits:' .. child)) > 0 then return 0 end
  local state = redis.call('HGET', jk(child), 'state')
  if state == 'pending' or state == 'retrying' then return place(child) end
  return 0
end

-- Record the dependencies of a freshly inserted job. Same-queue parents are checked now;
-- parents in other queues count as unmet until the driver hears back from their queue.
local function add_waits(id, local_json, remote_json)
  for _, dep in ipairs(cjson.decode(local_json)) do
    local state = redis.call('HGET', jk(dep), 'state')
    if state and state ~= 'completed' then
      redis.call('SADD', k('waits:' .. id), dep)
      redis.call('SADD', k('dependents:' .. dep), id)
    end
  end
  for _, dep in ipairs(cjson.decode(remote_json)) do
    redis.call('SADD', k('waits:' .. id), dep)
  end
end

-- Remove a job and everything filed under it (delete, prune). index/idem are the global keys.
local function drop(id, index, idem, queue)
  local v = redis.call('HMGET', jk(id), 'state', 'idempotency_key')
  if not v[1] then return 0 end
  redis.call('ZREM', k(v[1]), id)
  unplace(id)
  if v[2] and redis.call('HGET', idem, v[2]) == id then redis.call('HDEL', idem, v[2]) end
  if redis.call('HGET', index, id) == queue then redis.call('HDEL', index, id) end
  redis.call('DEL', jk(id), k('waits:' .. id), k('dependents:' .. id))
  return 1
end

-- Read one encoded record from ARGV at pos: a count n, n field/value pairs, then the job's
-- same-queue and other-queue dependency lists (JSON). Returns fields, flat pairs, deps, next.
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
  return fields, flat, ARGV[after], ARGV[after + 1], after + 2
end
