-- set_total.lua: declare the final totals once the reader is exhausted.
--
-- KEYS: 1 run HASH, 2 st STRING (BITFIELD u4), 3 lease ZSET, 4 meta HASH, 5 input HASH, 6 redo LIST,
--       7 wake LIST, 8 res HASH, 9 fail HASH, 10 fset ZSET, 11 ferr ZSET: every key of the run,
--       '<prefix>:{<run>}:<name>' (layout and fields in _lib.lua and dmap/keys.py).
-- ARGV: total_items, total_children
--
-- Returns -1 if the run does not exist, else 1 if the percentage tolerance (judged only from now
-- on) aborts the run, 0 if not.

if redis.call('HEXISTS', K_RUN, 'mc') == 0 then
  return -1
end
redis.call('HSET', K_RUN, 'it', ARGV[1], 'et', ARGV[2])
return check_tolerance()
