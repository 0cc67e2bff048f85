-- reserve: take up to `limit` ready jobs of one queue for a worker.
-- KEYS: base. ARGV: worker id, lease (microseconds), limit.
-- Returns the reserved jobs as HGETALL field/value arrays, best first.
local worker, lease, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])

-- Delayed jobs that fell due join the ready set first.
local due = redis.call('ZRANGEBYSCORE', k('delayed'), '-inf', fmt(NOW), 'LIMIT', 0, 1000)
for _, id in ipairs(due) do place(id) end

local out = {}
if limit <= 0 then return out end
local expires = fmt(NOW + lease)
for _, id in ipairs(redis.call('ZRANGE', k('ready'), 0, limit - 1)) do
  redis.call('ZREM', k('ready'), id)
  local key = jk(id)
  local state = redis.call('HGET', key, 'state')
  if (state == 'pending' or state == 'retrying')
      and redis.call('SCARD', k('waits:' .. id)) == 0 then
    redis.call('HINCRBY', key, 'attempts', 1)
    redis.call('HINCRBY', key, 'lease_epoch', 1)
    redis.call('HSET', key, 'lease_owner', worker, 'lease_expires_at', expires,
      'started_at', fmt(NOW), 'updated_at', fmt(NOW))
    set_state(id, state, 'processing', NOW + lease)
    out[#out + 1] = redis.call('HGETALL', key)
  end
end
-- Wake tokens hint at ready work; once none is left they would only cause idle spins.
if redis.call('ZCARD', k('ready')) == 0 then redis.call('DEL', k('wake')) end
return out
