-- set_progress: record a running job's progress under the fencing guard.
-- KEYS: base. ARGV: id, epoch, progress.
if not holds(ARGV[1], ARGV[2]) then return 0 end
redis.call('HSET', jk(ARGV[1]), 'progress', ARGV[3], 'updated_at', fmt(NOW))
return 1
