-- set_total.lua: declare a run's totals (the items its source holds), once.
--
-- KEYS: 1 run HASH, 2 st STRING (BITFIELD u4), 3 lease ZSET, 4 meta HASH, 5 input HASH, 6 redo LIST,
--       7 wake LIST, 8 res HASH, 9 fail HASH, 10 fset ZSET, 11 ferr ZSET, 12 act HASH: every key of the run,
--       '<prefix>:{<run>}:<name>' (layout and fields in _lib.lua and dmap/keys.py); only run is read/written.
-- ARGV: total_items, total_children
--
-- Returns -1 if the run does not exist; 0 if these totals were declared before (nothing changes);
-- else 1 if the percentage tolerance (judged only from now on) aborts the run, 0 if not.
-- Refuses, changing nothing, totals that differ from declared ones or are below the cursor (items
-- already granted; pending would go negative): returns {it or -1, et or -1, ci, cc} then.

local v = redis.call('HMGET', K_RUN, 'mc', 'it', 'et', 'ci', 'cc')
if not v[1] then
  return -1
end
local items, children = tonumber(ARGV[1]), tonumber(ARGV[2])
if v[2] then
  if tonumber(v[2]) == items and tonumber(v[3]) == children then
    return 0
  end
  return { tonumber(v[2]), tonumber(v[3]), tonumber(v[4]) or 0, tonumber(v[5]) or 0 }
end
if items < (tonumber(v[4]) or 0) or children < (tonumber(v[5]) or 0) then
  return { -1, -1, tonumber(v[4]) or 0, tonumber(v[5]) or 0 }
end
redis.call('HSET', K_RUN, 'it', ARGV[1], 'et', ARGV[2])
return check_tolerance()
