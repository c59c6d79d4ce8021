-- create.lua: create a run's state unless it exists (a resume).
--
-- KEYS: 1 run HASH, 2 st STRING (BITFIELD u4), 3 lease ZSET, 4 meta HASH, 5 input HASH, 6 redo LIST,
--       7 wake LIST, 8 res HASH, 9 fail HASH, 10 fset ZSET, 11 ferr ZSET, 12 act HASH: every key of the run,
--       '<prefix>:{<run>}:<name>' (layout and fields in _lib.lua and dmap/keys.py); only run is written.
-- ARGV: max_concurrency, tolerated_failure_count, tolerated_failure_percentage, max_attempts
--
-- Returns 1 if created, 0 if the run already existed (nothing is changed then).

if redis.call('HEXISTS', K_RUN, 'mc') == 1 then
  return 0
end
redis.call('HSET', K_RUN, 'mc', ARGV[1], 'tc', ARGV[2], 'tp', ARGV[3], 'ma', ARGV[4], 'cr', '0', 'cc', '0', 'ci', '0')
return 1
