-- depend: register jobs of other queues as dependents of jobs in this queue.
-- KEYS: base. ARGV: parent/child pairs. Returns per pair 1 when the parent is already met
-- (missing or completed: the caller then unblocks the child), else 0.
local out = {}
for i = 1, #ARGV, 2 do
  local parent, child = ARGV[i], ARGV[i + 1]
  local state = redis.call('HGET', jk(parent), 'state')
  if state and state ~= 'completed' then
    redis.call('SADD', k('dependents:' .. parent), child)
    out[#out + 1] = 0
  else
    out[#out + 1] = 1
  end
end
return out
