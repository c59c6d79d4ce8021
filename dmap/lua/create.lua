-- create.lua: create a run's state unless it exists (a resume).
--
-- KEYS: the 11 run keys (see _lib.lua / dmap/keys.py); only KEYS[1] (run HASH) is written.
-- ARGV: max_concurrency, tolerated_failure_count, tolerated_failure_percentage, max_attempts
--
-- Returns 1 if created, 0 if the run already existed (nothing is changed then).

if redis.call('HEXISTS', K_RUN, 'mc') == 1 then
  return 0
end
redis.call('HSET', K_RUN, 'mc', ARGV[1], 'tc', ARGV[2], 'tp', ARGV[3], 'ma', ARGV[4], 'cr', '0', 'cc', '0', 'ci', '0')
return 1
