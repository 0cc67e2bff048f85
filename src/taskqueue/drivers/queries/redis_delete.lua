-- delete: remove one job. KEYS: base, index, idem. ARGV: id, queue name.
return drop(ARGV[1], KEYS[2], KEYS[3], ARGV[2])
