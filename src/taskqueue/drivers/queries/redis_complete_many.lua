-- complete_many: complete several jobs of this queue (see complete_job), each under its own
-- fencing guard, in one call.
-- KEYS: base. ARGV: id, epoch, result triples (result '' = none, else '=' .. result).
-- Returns {answers, remote}: per triple 1 (completed), 0 (the lease is not held) or -1 (no
-- such job in this queue); remote: child, parent pairs of dependents in other queues.
local answers, remote, done, woke = {}, {}, {}, 0
for i = 1, #ARGV, 3 do
  local id = ARGV[i]
  local answer, ready, children = complete_job(id, ARGV[i + 1], ARGV[i + 2])
  answers[#answers + 1] = answer
  if answer == 1 then
    done[#done + 1] = id
    woke = woke + ready
    for _, child in ipairs(children) do
      remote[#remote + 1] = child
      remote[#remote + 1] = id
    end
  end
end
-- The state sets, as set_state moves one job.
if #done > 0 then
  bulk('ZREM', k('processing'), done)
  local index, now = {}, fmt(NOW)
  for _, id in ipairs(done) do
    index[#index + 1] = now
    index[#index + 1] = id
  end
  bulk('ZADD', k('completed'), index)
end
wake(woke)
return {answers, remote}
