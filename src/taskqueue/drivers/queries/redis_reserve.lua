-- reserve: take up to `limit` ready jobs of one queue for a worker.
-- KEYS: base. ARGV: worker id, lease (microseconds), limit.
-- Returns the reserved jobs best first, each as a row (see take). A reservation that takes no
-- job returns instead the one value next_due gives (microseconds until the earliest delayed
-- job falls due, or nil): a worker about to wait for work needs it, and asking separately
-- was a round trip of its own before every wait.
local worker, lease, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])

-- Delayed jobs that fell due join the ready set first.
local due = redis.call('ZRANGEBYSCORE', k('delayed'), '-inf', fmt(NOW), 'LIMIT', 0, 1000)
for _, id in ipairs(due) do place(id) end

local out = {}
if limit <= 0 then return out end
local ids = redis.call('ZRANGE', k('ready'), 0, limit - 1)
if #ids == 0 then
  drain_wake()
  return {next_due()}
end
bulk('ZREM', k('ready'), ids)
local from, lease_index = {pending = {}, retrying = {}}, {}
local expires = fmt(NOW + lease)
for _, id in ipairs(ids) do
  local v = read_job(id)
  local state = v and v.state
  -- waits:<id> is only ever filled for a job stored with dependencies (add_waits), so a job
  -- without that field skips the look (one redis.call, ~8k server instructions, per job)
  if (state == 'pending' or state == 'retrying')
      and (not v.dependencies or redis.call('SCARD', k('waits:' .. id)) == 0) then
    out[#out + 1] = take(id, v, worker, lease)
    local group = from[state]
    group[#group + 1] = id
    lease_index[#lease_index + 1] = expires
    lease_index[#lease_index + 1] = id
  end
end
-- The state sets, as set_state would move each job.
for state, group in pairs(from) do
  if #group > 0 then bulk('ZREM', k(state), group) end
end
if #lease_index > 0 then bulk('ZADD', k('processing'), lease_index) end
drain_wake()
if #out == 0 then return {next_due()} end
return out
