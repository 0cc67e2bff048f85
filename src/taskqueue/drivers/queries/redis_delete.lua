-- delete: remove one job. KEYS: base. ARGV: id.
return drop(ARGV[1])
