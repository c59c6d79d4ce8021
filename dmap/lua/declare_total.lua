-- declare_total.lua: declare the source's totals learned ahead of the reader (a count).
--
-- KEYS: 1 run HASH, 2 st STRING (BITFIELD u4), 3 lease ZSET, 4 meta HASH, 5 input HASH, 6 redo LIST,
--       7 wake LIST, 8 res HASH, 9 fail HASH, 10 fset ZSET, 11 ferr ZSET, 12 act HASH: every key of the run,
--       '<prefix>:{<run>}:<name>' (layout and fields in _lib.lua and dmap/keys.py).
-- ARGV: total_items, total_children ('' when unknown: an ItemBatcher's children follow at exhaustion)
--
-- Writes dt (and dc), not it/et: those still mean "the reader is exhausted". The first declaration
-- wins; once declared or once the final totals are set, a declaration changes nothing.
-- Returns -1 if the run does not exist, else 1 if the percentage tolerance, judged against the
-- declared total from now on, aborts the run, 0 if not.

if redis.call('HEXISTS', K_RUN, 'mc') == 0 then
  return -1
end
if redis.call('HEXISTS', K_RUN, 'it') == 1 or redis.call('HEXISTS', K_RUN, 'dt') == 1 then
  return 0
end
redis.call('HSET', K_RUN, 'dt', ARGV[1])
if ARGV[2] ~= '' then
  redis.call('HSET', K_RUN, 'dc', ARGV[2])
end
return check_tolerance()
