-- restore: insert complete records as they are, skipping ids (and idempotency keys) that
-- already exist in this queue (a key counts while it blocks duplicates, see live_claim).
-- KEYS: base. ARGV: records. The driver skips ids that exist in other queues and adds the
-- queue to the queue set before it calls this script.
-- Returns per record 1 (inserted) or 0 (skipped).
local score_field = {pending = 'available_at', retrying = 'available_at',
  processing = 'lease_expires_at', completed = 'completed_at', failed = 'failed_at',
  cancelled = 'failed_at'}
local out, fresh = {}, {}
local pos = 1
while pos <= #ARGV do
  local f, flat, local_deps, remote_deps, nxt = read_record(pos)
  local key = f.idempotency_key
  if redis.call('EXISTS', jk(f.id)) == 1 or (key and live_claim(key))
      or not score_field[f.state] then
    out[#out + 1] = 0
  else
    redis.call('HSET', jk(f.id), unpack(flat))
    if key then redis.call('HSET', k('idem'), key, f.id) end
    local score = tonumber(f[score_field[f.state]]) or tonumber(f.updated_at) or NOW
    redis.call('ZADD', k(f.state), fmt(score), f.id)
    out[#out + 1] = 1
    if f.state ~= 'completed' then fresh[#fresh + 1] = {f.id, local_deps, remote_deps, f.state} end
  end
  pos = nxt
end
local ready = 0
for _, job in ipairs(fresh) do
  add_waits(job[1], job[2], job[3])
  if job[4] == 'pending' or job[4] == 'retrying' then ready = ready + place(job[1]) end
end
wake(ready)
return out
