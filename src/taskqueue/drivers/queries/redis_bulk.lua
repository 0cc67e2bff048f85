-- bulk: one action on many jobs of this queue (Driver.apply_many), each changed exactly as its
-- single-job script changes it (redis_retry, redis_cancel, redis_set_priority, redis_delete),
-- and only from the states that script accepts (delete: any but processing).
-- KEYS: base. ARGV: action, reason (cancel) or priority (priority) or '', id... Returns the
-- ids changed.
local action, arg = ARGV[1], ARGV[2]
local changed = {}
local ready = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local key = jk(id)
  local v = redis.call('HMGET', key, 'state', 'failed_at')
  local state = v[1]
  local waiting = state == 'pending' or state == 'retrying' or state == 'processing'
  local done = false
  if action == 'retry' and (state == 'failed' or state == 'cancelled') then
    redis.call('HSET', key, 'attempts', '0', 'available_at', NOW_S, 'updated_at', NOW_S)
    redis.call('HDEL', key, 'failed_at', 'lease_owner', 'lease_expires_at')
    set_state(id, state, 'pending', NOW)
    ready = ready + place(id)
    done = true
  elseif action == 'cancel' and waiting then
    unplace(id)
    redis.call('HSET', key, 'exception', arg, 'updated_at', NOW_S)
    redis.call('HDEL', key, 'lease_owner', 'lease_expires_at')
    set_state(id, state, 'cancelled', tonumber(v[2]) or NOW)
    key_on_finish(id)
    done = true
  elseif action == 'priority' and waiting then
    redis.call('HSET', key, 'priority', arg, 'updated_at', NOW_S)
    if redis.call('ZSCORE', k('ready'), id) then place(id) end
    done = true
  elseif action == 'delete' and state and state ~= 'processing' then
    done = drop(id) == 1
  end
  if done then changed[#changed + 1] = id end
end
wake(ready)
return changed
