-- prune: delete completed jobs older than their age limit (by completed_at) and failed or
-- cancelled ones (by failed_at, else updated_at). KEYS: base.
-- ARGV: completed age (us), failed age (us), the most to delete in this call (all states).
-- Returns {deleted, more} where more = 1 when the call stopped at its cap.
local cap = tonumber(ARGV[3])
local deleted, more = 0, 0
local cutoffs = {{'completed', ARGV[1]}, {'failed', ARGV[2]}, {'cancelled', ARGV[2]}}
for _, pair in ipairs(cutoffs) do
  local room = cap - deleted
  if room <= 0 then more = 1; break end
  local old = redis.call('ZRANGEBYSCORE', k(pair[1]), '-inf',
    '(' .. fmt(NOW - tonumber(pair[2])), 'LIMIT', 0, room)
  if #old >= room then more = 1 end
  for _, id in ipairs(old) do deleted = deleted + drop(id) end
end
return {deleted, more}
