-- due: microseconds until this queue's earliest delayed job falls due (<= 0: it has), by this
-- queue's server clock; nothing when no job waits for a time. KEYS: base.
return next_due()
