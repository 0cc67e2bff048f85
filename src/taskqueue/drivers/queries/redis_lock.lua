-- lock: a named lock with a TTL kept by Redis key expiry (the server's clock).
-- KEYS: the lock key. ARGV: 'acquire' or 'release', owner, ttl (milliseconds, acquire only).
-- Acquire takes a free lock or renews one the owner holds. Returns 1 on success.
local holder = redis.call('GET', KEYS[1])
if ARGV[1] == 'acquire' then
  if holder and holder ~= ARGV[2] then return 0 end
  redis.call('SET', KEYS[1], ARGV[2], 'PX', math.max(1, tonumber(ARGV[3])))
  return 1
end
if holder ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
return 1
