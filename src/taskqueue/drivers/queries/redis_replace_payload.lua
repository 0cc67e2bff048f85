-- replace_payload: give a pending job a new payload and due time (debounced unique jobs).
-- KEYS: base. ARGV: id, payload, delay (microseconds), delay_seconds (as stored).
local id = ARGV[1]
local key = jk(id)
if redis.call('HGET', key, 'state') ~= 'pending' then return 0 end
local avail = NOW + math.max(0, tonumber(ARGV[3]))
redis.call('HSET', key, 'payload', ARGV[2], 'available_at', fmt(avail),
  'delay_seconds', ARGV[4], 'updated_at', fmt(NOW))
redis.call('ZADD', k('pending'), fmt(avail), id)
wake(place(id))
return 1
