-- prune: delete completed jobs older than their age limit (by completed_at) and failed or
-- cancelled ones (by failed_at, else updated_at). KEYS: base, index, idem.
-- ARGV: queue name, completed age (us), failed age (us), the most to delete per state.
-- Returns {deleted, more} where more = 1 when a state hit the per-call cap.
local queue, cap = ARGV[1], tonumber(ARGV[4])
local deleted, more = 0, 0
local cutoffs = {completed = ARGV[2], failed = ARGV[3], cancelled = ARGV[3]}
for state, age in pairs(cutoffs) do
  local old = redis.call('ZRANGEBYSCORE', k(state), '-inf', '(' .. fmt(NOW - tonumber(age)),
    'LIMIT', 0, cap)
  if #old >= cap then more = 1 end
  for _, id in ipairs(old) do deleted = deleted + drop(id, KEYS[2], KEYS[3], queue) end
end
return {deleted, more}
