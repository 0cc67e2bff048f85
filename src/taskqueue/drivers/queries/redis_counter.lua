-- counter: add to a counter whose window starts at first use and ends by key expiry.
-- KEYS: the counter key. ARGV: amount, window (milliseconds). Returns the new value.
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], math.max(1, tonumber(ARGV[2])))
end
return value
