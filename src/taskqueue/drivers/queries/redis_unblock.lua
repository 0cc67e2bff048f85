-- unblock: dependencies met in other queues. KEYS: base. ARGV: child/parent pairs.
-- Idempotent: a parent already forgotten changes nothing.
local woke = 0
for i = 1, #ARGV, 2 do woke = woke + unblock(ARGV[i], ARGV[i + 1]) end
wake(woke)
return woke
