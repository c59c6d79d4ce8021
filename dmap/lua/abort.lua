-- abort.lua: set the abort flag once, with its reason, and wake the coordinator.
--
-- KEYS: the 11 run keys (see _lib.lua / dmap/keys.py).
-- ARGV: reason ("tolerance", "stopped", ...)
--
-- Returns 1 if this call set the flag, 0 if it was already set or the run does not exist.

if redis.call('HEXISTS', K_RUN, 'mc') == 0 then
  return 0
end
if redis.call('HSETNX', K_RUN, 'abort', ARGV[1]) == 0 then
  return 0
end
wake('ABORT')
return 1
