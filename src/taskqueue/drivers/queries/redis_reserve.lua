-- reserve: take up to `limit` ready jobs of one queue for a worker.
-- KEYS: base. ARGV: worker id, lease (microseconds), limit.
-- Returns the reserved jobs as HGETALL field/value arrays, best first.
local worker, lease, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])

-- Delayed jobs that fell due join the ready set first.
local due = redis.call('ZRANGEBYSCORE', k('delayed'), '-inf', fmt(NOW), 'LIMIT', 0, 1000)
for _, id in ipairs(due) do place(id) end

local out = {}
if limit <= 0 then return out end
for _, id in ipairs(redis.call('ZRANGE', k('ready'), 0, limit - 1)) do
  redis.call('ZREM', k('ready'), id)
  local state = redis.call('HGET', jk(id), 'state')
  if (state == 'pending' or state == 'retrying')
      and redis.call('SCARD', k('waits:' .. id)) == 0 then
    out[#out + 1] = take(id, state, worker, lease)
  end
end
drain_wake()
return out
