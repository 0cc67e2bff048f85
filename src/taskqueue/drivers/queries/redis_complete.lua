-- complete: one job, processing -> completed under the fencing guard (see complete_job).
-- KEYS: base. ARGV: id, epoch, result ('' = none, else '=' .. result).
-- Returns {0} when the lease is not held, else {1, dependents living in other queues...}.
local id = ARGV[1]
local answer, woke, remote = complete_job(id, ARGV[2], ARGV[3])
if answer ~= 1 then return {0} end
set_state(id, 'processing', 'completed', NOW)
wake(woke)
local out = {1}
for _, child in ipairs(remote) do out[#out + 1] = child end
return out
