-- reserve_job: take one given job for a worker if it is ready now (pending or retrying, due,
-- no unmet dependency), with the same effects as reserve.
-- KEYS: base. ARGV: id, worker id, lease (microseconds).
-- Returns the job as a row (see take), or an empty array.
local id, worker, lease = ARGV[1], ARGV[2], tonumber(ARGV[3])
local v = read_job(id)
local state = v and v.state
if (state ~= 'pending' and state ~= 'retrying') or tonumber(v.available_at) > NOW
    or redis.call('SCARD', k('waits:' .. id)) > 0 then
  return {}
end
unplace(id)
local job = take(id, v, worker, lease)
set_state(id, state, 'processing', NOW + lease)
drain_wake()
return job
