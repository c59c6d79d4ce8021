-- abort.lua: set the abort flag once, with its reason, and wake the coordinator.
--
-- KEYS: 1 run HASH, 2 st STRING (BITFIELD u4), 3 lease ZSET, 4 meta HASH, 5 input HASH, 6 redo LIST,
--       7 wake LIST, 8 res HASH, 9 fail HASH, 10 fset ZSET, 11 ferr ZSET, 12 act HASH: every key of the run,
--       '<prefix>:{<run>}:<name>' (layout and fields in _lib.lua and dmap/keys.py).
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
