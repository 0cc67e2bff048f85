-- push: insert new jobs into one queue. KEYS: base. ARGV: per job, a JSON array -- its hash
-- fields but the payload (strings), then optionally its same-queue and other-queue
-- dependencies (id lists) -- and its payload. The driver adds the queue to the queue set (a
-- global key, another slot) in the same round trip when it is new to the driver.
-- Returns, per job, the id that now stands for it (the existing one for a duplicate key; a
-- key whose holder no longer blocks duplicates -- see live_claim -- passes to the new job).

-- Validate first so that a conflict writes nothing. A known id is accepted only when it is
-- this very job again (a push retried after a lost reply).
local records = {}
for pos = 1, #ARGV, 2 do
  local doc = cjson.decode(ARGV[pos])
  local f = doc[1]
  f.payload = ARGV[pos + 1]
  local known = redis.call('EXISTS', jk(f.id)) == 1
  if known then
    local same = redis.call('HMGET', jk(f.id), 'name', 'payload')
    if same[1] ~= f.name or same[2] ~= f.payload then
      return redis.error_reply('CONFLICT job id ' .. f.id .. ' already exists')
    end
  end
  records[#records + 1] = {f, doc[2], doc[3], known}
end

local out, fresh = {}, {}
for _, record in ipairs(records) do
  local f = record[1]
  local id = f.id
  if not record[4] then
    local key = f.idempotency_key
    local holder = key and live_claim(key)
    if holder then
      id = holder
    else
      if key then redis.call('HSET', k('idem'), key, id) end
      local avail = NOW + math.floor(tonumber(f.delay_seconds) * 1000000)
      f.state, f.attempts, f.lease_epoch = 'pending', '0', '0'
      f.available_at, f.created_at, f.updated_at = fmt(avail), NOW_S, NOW_S
      local flat = {}
      for name, value in pairs(f) do
        flat[#flat + 1] = name
        flat[#flat + 1] = value
      end
      redis.call('HSET', jk(id), unpack(flat))
      fresh[#fresh + 1] = {id, record[2], record[3], avail, f.priority}
    end
  end
  out[#out + 1] = id
end

-- Dependencies last, so a parent pushed in the same batch is already there. The state set and
-- the ready and delayed indexes of jobs without dependencies are written in one ZADD each.
local ready, pending, now_ready, later = 0, {}, {}, {}
for _, job in ipairs(fresh) do
  local id, avail = job[1], job[4]
  pending[#pending + 1] = fmt(avail)
  pending[#pending + 1] = id
  if not add_waits(id, job[2], job[3]) then
    ready = ready + file(id, avail, job[5])
  elseif avail <= NOW then
    now_ready[#now_ready + 1] = ready_score(job[5], avail)
    now_ready[#now_ready + 1] = id
    ready = ready + 1
  else
    later[#later + 1] = fmt(avail)
    later[#later + 1] = id
  end
end
if #pending > 0 then bulk('ZADD', k('pending'), pending) end
if #now_ready > 0 then bulk('ZADD', k('ready'), now_ready) end
if #later > 0 then bulk('ZADD', k('delayed'), later) end
wake(ready)
return out
