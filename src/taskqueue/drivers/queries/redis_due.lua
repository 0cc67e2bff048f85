-- due: microseconds until this queue's earliest delayed job falls due (<= 0: it has), by this
-- queue's server clock; nothing when no job waits for a time. KEYS: base.
local head = redis.call('ZRANGE', k('delayed'), 0, 0, 'WITHSCORES')
if #head == 0 then return false end
return tonumber(head[2]) - NOW
