-- registry: entries (workers, nodes) that vanish unless refreshed within their TTL.
-- KEYS: entries hash (key -> JSON), expiry sorted set (key -> expiry in microseconds).
-- ARGV: 'put' key data ttl_us | 'list' | 'remove' key. 'list' returns key/data pairs.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', string.format('%.0f', now))
for _, key in ipairs(gone) do redis.call('HDEL', KEYS[1], key) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('%.0f', now))
if ARGV[1] == 'put' then
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
  redis.call('ZADD', KEYS[2], string.format('%.0f', now + tonumber(ARGV[4])), ARGV[2])
elseif ARGV[1] == 'remove' then
  redis.call('HDEL', KEYS[1], ARGV[2])
  redis.call('ZREM', KEYS[2], ARGV[2])
else
  return redis.call('HGETALL', KEYS[1])
end
return 1
