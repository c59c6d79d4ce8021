-- update_config.lua: change the limits of a live run (UpdateMapRun).
--
-- KEYS: 1 run HASH, 2 st STRING (BITFIELD u4), 3 lease ZSET, 4 meta HASH, 5 input HASH, 6 redo LIST,
--       7 wake LIST, 8 res HASH, 9 fail HASH, 10 fset ZSET, 11 ferr ZSET, 12 act HASH: every key of the run,
--       '<prefix>:{<run>}:<name>' (layout and fields in _lib.lua and dmap/keys.py).
-- ARGV: max_concurrency, tolerated_failure_count, tolerated_failure_percentage ('' = unchanged)
--
-- Returns -1 if the run does not exist, else 1 if the new tolerance aborts the run now, 0 if not.
-- Always wakes the coordinator: a larger concurrency frees permits at once.

if redis.call('HEXISTS', K_RUN, 'mc') == 0 then
  return -1
end
local fields = { 'mc', 'tc', 'tp' }
for i = 1, 3 do
  if ARGV[i] ~= '' then
    redis.call('HSET', K_RUN, fields[i], ARGV[i])
  end
end
local aborted = check_tolerance()
wake('1')
return aborted
