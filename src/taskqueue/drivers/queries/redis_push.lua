-- push: insert new jobs into one queue.
-- KEYS: base, index (id -> queue hash), idem (idempotency key -> id hash), queues (set).
-- ARGV: queue name, then records (see read_record) holding the new job's fields.
-- Returns, per job, the id that now stands for it (the existing one for a duplicate key; a
-- key whose holder no longer blocks duplicates -- see live_claim -- passes to the new job).
local index, idem, queues, queue = KEYS[2], KEYS[3], KEYS[4], ARGV[1]

-- Validate first so that a conflict writes nothing. A known id is accepted only when it is
-- this very job again (a push retried after a lost reply).
local pos = 2
while pos <= #ARGV do
  local f, _, _, _, nxt = read_record(pos)
  if redis.call('HEXISTS', index, f.id) == 1 then
    local same = redis.call('HMGET', jk(f.id), 'name', 'payload')
    if same[1] ~= f.name or same[2] ~= f.payload then
      return redis.error_reply('CONFLICT job id ' .. f.id .. ' already exists')
    end
  end
  pos = nxt
end

local out, fresh = {}, {}
pos = 2
while pos <= #ARGV do
  local f, flat, local_deps, remote_deps, nxt = read_record(pos)
  local id = f.id
  if redis.call('HEXISTS', index, id) == 0 then
    local key = f.idempotency_key
    local holder = key and live_claim(key)
    if holder then
      id = holder
    else
      if key then redis.call('HSET', idem, key, id) end
      local avail = NOW + math.floor(tonumber(f.delay_seconds) * 1000000)
      redis.call('HSET', jk(f.id), unpack(flat))
      redis.call('HSET', jk(f.id), 'state', 'pending', 'attempts', '0', 'lease_epoch', '0',
        'available_at', fmt(avail), 'created_at', fmt(NOW), 'updated_at', fmt(NOW))
      redis.call('HSET', index, f.id, queue)
      redis.call('ZADD', k('pending'), fmt(avail), f.id)
      fresh[#fresh + 1] = {f.id, local_deps, remote_deps}
    end
  end
  out[#out + 1] = id
  pos = nxt
end

-- Dependencies last, so a parent pushed in the same batch is already there.
local ready = 0
for _, job in ipairs(fresh) do
  add_waits(job[1], job[2], job[3])
  ready = ready + place(job[1])
end
redis.call('SADD', queues, queue)
wake(ready)
return out
