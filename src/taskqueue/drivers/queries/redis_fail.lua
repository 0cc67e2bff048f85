-- fail: processing -> retrying (due after the backoff) or -> failed, under the fencing guard.
-- KEYS: base. ARGV: id, epoch, error text, retry_in (microseconds; '' = dead-letter now), the
-- error as the attempt history keeps it.
local id, epoch, err, retry_in = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if not holds(id, epoch) then return 0 end
local key = jk(id)
add_attempt(key, retry_in == '' and 'failed' or 'retrying', ARGV[5])
redis.call('HSET', key, 'exception', err, 'updated_at', fmt(NOW))
redis.call('HDEL', key, 'lease_owner', 'lease_expires_at')
if retry_in == '' then
  redis.call('HSET', key, 'failed_at', fmt(NOW), 'available_at', fmt(NOW))
  set_state(id, 'processing', 'failed', NOW)
  key_on_finish(id)
  return 1
end
local avail = NOW + math.max(0, tonumber(retry_in))
redis.call('HSET', key, 'available_at', fmt(avail))
redis.call('HDEL', key, 'failed_at')
set_state(id, 'processing', 'retrying', avail)
wake(place(id))
return 1
