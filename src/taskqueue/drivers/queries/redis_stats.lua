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
local waiting = {}
for _, name in ipairs({'pending', 'retrying'}) do
  local got = redis.call('ZRANGE', k(name), 0, sample - 1, 'WITHSCORES')
  for i = 1, #got, 2 do waiting[#waiting + 1] = {got[i], tonumber(got[i + 1])} end
end
table.sort(waiting, function(a, b) return a[2] < b[2] end)
local total, summed = 0, 0
for i = 1, math.min(sample, #waiting) do
  local priority = redis.call('HGET', jk(waiting[i][1]), 'priority')
  if priority then
    total = total + tonumber(priority)
    summed = summed + 1
  end
end
out[#out + 1] = waiting[1] and fmt(waiting[1][2]) or false
out[#out + 1] = fmt(total)
out[#out + 1] = summed
return out
