-- peek: promote due delayed jobs, then show the best `limit` ready jobs with their scores
-- (used to choose between several queues before reserving). KEYS: base. ARGV: limit.
local due = redis.call('ZRANGEBYSCORE', k('delayed'), '-inf', fmt(NOW), 'LIMIT', 0, 1000)
for _, id in ipairs(due) do place(id) end
return redis.call('ZRANGE', k('ready'), 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
