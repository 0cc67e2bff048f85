-- stats: a queue's figures in one call, read-only. The count of every state set (ZCARD), the
-- completions of the last minute (the completed set is scored by completion time), and over
-- the ARGV[1] longest-waiting jobs (pending and retrying sets, scored by due time) their
-- earliest due time and the sum of their priorities: exact below that many waiting jobs, a
-- sample of the oldest above, read here rather than sent to the client job by job.
-- KEYS: base. ARGV: sample size, then the state names in the order wanted.
-- Returns {count per state..., completed last minute, oldest due (us) or false, priority sum,
-- jobs summed}.
local sample = tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV do out[#out + 1] = redis.call('ZCARD', k(ARGV[i])) end
out[#out + 1] = redis.call('ZCOUNT', k('completed'), fmt(NOW - 60000000), '+inf')
-- the two sets are each in due order: merge their heads, no table of entries, no sort
local p = redis.call('ZRANGE', k('pending'), 0, sample - 1, 'WITHSCORES')
local r = redis.call('ZRANGE', k('retrying'), 0, sample - 1, 'WITHSCORES')
local i, j, total, summed = 1, 1, 0, 0
for _ = 1, sample do
  local id
  if i <= #p and (j > #r or tonumber(p[i + 1]) <= tonumber(r[j + 1])) then
    id = p[i]
    i = i + 2
  elseif j <= #r then
    id = r[j]
    j = j + 2
  else
    break
  end
  local priority = redis.call('HGET', jk(id), 'priority')
  if priority then
    total = total + tonumber(priority)
    summed = summed + 1
  end
end
local oldest = false
if p[2] then oldest = p[2] end
if r[2] and (not oldest or tonumber(r[2]) < tonumber(oldest)) then oldest = r[2] end
out[#out + 1] = oldest and fmt(tonumber(oldest)) or false
out[#out + 1] = fmt(total)
out[#out + 1] = summed
return out
