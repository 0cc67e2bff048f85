-- reserve_job: take one given job for a worker if it is ready now (pending or retrying, due,
-- no unmet dependency), with the same effects as reserve.
-- KEYS: base. ARGV: id, worker id, lease (microseconds).
-- Returns the job as an HGETALL field/value array, or an empty array.
local id, worker, lease = ARGV[1], ARGV[2], tonumber(ARGV[3])
local v = redis.call('HMGET', jk(id), 'state', 'available_at')
local state = v[1]
if (state ~= 'pending' and state ~= 'retrying') or tonumber(v[2]) > NOW
    or redis.call('SCARD', k('waits:' .. id)) > 0 then
  return {}
end
unplace(id)
local job = take(id, state, worker, lease)
drain_wake()
return job
