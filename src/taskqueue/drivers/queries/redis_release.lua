-- release: processing -> pending without using an attempt (hand back, snooze, held by a limit).
-- KEYS: base. ARGV: id, epoch, delay (microseconds), reason ('' = keep the exception text,
-- else '=' .. reason, stored in exception so people can see why the job waits).
local id, epoch = ARGV[1], ARGV[2]
if not holds(id, epoch) then return 0 end
local key = jk(id)
local attempts = tonumber(redis.call('HGET', key, 'attempts')) or 0
local avail = NOW + math.max(0, tonumber(ARGV[3]))
redis.call('HSET', key, 'attempts', math.max(attempts - 1, 0), 'available_at', fmt(avail),
  'updated_at', fmt(NOW))
if ARGV[4] ~= '' then redis.call('HSET', key, 'exception', string.sub(ARGV[4], 2)) end
redis.call('HDEL', key, 'lease_owner', 'lease_expires_at')
set_state(id, 'processing', 'pending', avail)
wake(place(id))
return 1
