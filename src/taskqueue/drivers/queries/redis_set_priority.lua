-- set_priority: change the priority of an unfinished job (re-scoring it when it is ready).
-- KEYS: base. ARGV: id, priority.
local id = ARGV[1]
local key = jk(id)
local state = redis.call('HGET', key, 'state')
if state ~= 'pending' and state ~= 'retrying' and state ~= 'processing' then return 0 end
redis.call('HSET', key, 'priority', ARGV[2], 'updated_at', fmt(NOW))
if redis.call('ZSCORE', k('ready'), id) then place(id) end
return 1
