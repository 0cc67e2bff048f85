-- push: insert new jobs into one queue. KEYS: base. ARGV: records (see read_record) holding
-- the new jobs' fields. The driver adds the queue to the queue set (a global key, another
-- slot) before it calls this script.
-- Returns, per job, the id that now stands for it (the existing one for a duplicate key; a
-- key whose holder no longer blocks duplicates -- see live_claim -- passes to the new job).

-- Validate first so that a conflict writes nothing. A known id is accepted only when it is
-- this very job again (a push retried after a lost reply).
local records, pos = {}, 1
while pos <= #ARGV do
  local f, flat, local_deps, remote_deps, nxt = read_record(pos)
  local known = redis.call('EXISTS', jk(f.id)) == 1
  if known then
    local same = redis.call('HMGET', jk(f.id), 'name', 'payload')
    if same[1] ~= f.name or same[2] ~= f.payload then
      return redis.error_reply('CONFLICT job id ' .. f.id .. ' already exists')
    end
  end
  records[#records + 1] = {f, flat, local_deps, remote_deps, known}
  pos = nxt
end

local out, fresh = {}, {}
for _, record in ipairs(records) do
  local f, flat = record[1], record[2]
  local id = f.id
  if not record[5] then
    local key = f.idempotency_key
    local holder = key and live_claim(key)
    if holder then
      id = holder
    else
      if key then redis.call('HSET', k('idem'), key, id) end
      local avail = NOW + math.floor(tonumber(f.delay_seconds) * 1000000)
      local n = #flat
      flat[n + 1], flat[n + 2] = 'state', 'pending'
      flat[n + 3], flat[n + 4] = 'attempts', '0'
      flat[n + 5], flat[n + 6] = 'lease_epoch', '0'
      flat[n + 7], flat[n + 8] = 'available_at', fmt(avail)
      flat[n + 9], flat[n + 10] = 'created_at', NOW_S
      flat[n + 11], flat[n + 12] = 'updated_at', NOW_S
      redis.call('HSET', jk(id), unpack(flat))
      redis.call('ZADD', k('pending'), fmt(avail), id)
      fresh[#fresh + 1] = {id, record[3], record[4], avail, f.priority}
    end
  end
  out[#out + 1] = id
end

-- Dependencies last, so a parent pushed in the same batch is already there.
local ready = 0
for _, job in ipairs(fresh) do
  local free = add_waits(job[1], job[2], job[3])
  ready = ready + file(job[1], job[4], job[5], free)
end
wake(ready)
return out
