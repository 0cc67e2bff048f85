-- dependency_failed: a job failed for good or was cancelled; settle the jobs waiting on it.
-- KEYS: base. ARGV: parent id, 'cancel' or 'release', reason, then optionally the children to
-- settle (when the parent lives in another queue); without them, the parent's dependents here.
-- 'cancel': pending dependents become cancelled with the reason. 'release': the edge counts as
-- satisfied, as a completion would (once: unblock forgets the parent), and dependents left
-- waiting on nothing are released. The dependents set is kept, as the SQL drivers keep their
-- edges: a parent retried later still reaches them (and, completing, satisfies nothing twice).
-- Returns {ids settled, dependents not in this queue (the caller settles them there)}.
local parent, action, reason = ARGV[1], ARGV[2], ARGV[3]
local children = {}
for i = 4, #ARGV do children[#children + 1] = ARGV[i] end
if #ARGV < 4 then children = redis.call('SMEMBERS', k('dependents:' .. parent)) end

local settled, remote, woke = {}, {}, 0
for _, child in ipairs(children) do
  local key = jk(child)
  local state = redis.call('HGET', key, 'state')
  if not state then
    if #ARGV < 4 then remote[#remote + 1] = child end
  elseif action == 'cancel' then
    if state == 'pending' then
      unplace(child)
      redis.call('HSET', key, 'exception', reason, 'updated_at', fmt(NOW))
      set_state(child, state, 'cancelled', NOW)
      key_on_finish(child)
      settled[#settled + 1] = child
    end
  else
    local ready, released = unblock(child, parent)
    woke = woke + ready
    if released then settled[#settled + 1] = child end
  end
end
wake(woke)
return {settled, remote}
