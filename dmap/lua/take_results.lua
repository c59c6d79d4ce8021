-- take_results.lua: remove and return the records of the contiguous finished children from a child.
--
-- KEYS: 1 run HASH, 2 st STRING (BITFIELD u4), 3 lease ZSET, 4 meta HASH, 5 input HASH, 6 redo LIST,
--       7 wake LIST, 8 res HASH, 9 fail HASH, 10 fset ZSET, 11 ferr ZSET, 12 act HASH: every key of the run,
--       '<prefix>:{<run>}:<name>' (layout and fields in _lib.lua and dmap/keys.py).
-- ARGV: first_child, limit (the client sends at most 500)
--
-- Returns the records (JSON text) of children first_child, first_child+1, ... up to the first one
-- without a record. Bumps the results-written counters; drops the meta of succeeded children
-- (failed ones keep it for redrive).

local out = {}
local items = 0
local child = tonumber(ARGV[1])
for _ = 1, tonumber(ARGV[2]) do
  local c = int(child)
  local record = redis.call('HGET', K_RES, c)
  if not record then
    break
  end
  redis.call('HDEL', K_RES, c)
  local mv = redis.call('HGET', K_META, c)
  if mv then
    items = items + parse_meta(mv).items
    if get_status(c) == SUCCEEDED and not redis.call('ZSCORE', K_LEASE, c) then
      redis.call('HDEL', K_META, c)
    end
  end
  out[#out + 1] = record
  child = child + 1
end
if #out > 0 then
  redis.call('HINCRBY', K_RUN, 'iw', items)
  redis.call('HINCRBY', K_RUN, 'ew', #out)
end
return out
