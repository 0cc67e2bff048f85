-- prune: delete completed jobs older than their age limit (by completed_at) and failed or
-- cancelled ones (by failed_at, else updated_at). KEYS: base.
-- ARGV: completed age (us), failed age (us), the most to delete per state.
-- Returns {deleted, more} where more = 1 when a state hit the per-call cap.
local cap = tonumber(ARGV[3])
local deleted, more = 0, 0
local cutoffs = {completed = ARGV[1], failed = ARGV[2], cancelled = ARGV[2]}
for state, age in pairs(cutoffs) do
  local old = redis.call('ZRANGEBYSCORE', k(state), '-inf', '(' .. fmt(NOW - tonumber(age)),
    'LIMIT', 0, cap)
  if #old >= cap then more = 1 end
  for _, id in ipairs(old) do deleted = deleted + drop(id) end
end
return {deleted, more}
