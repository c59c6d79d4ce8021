-- close.lua: end an aborted run: every child still holding a lease is recorded ABORTED.
--
-- KEYS: 1 run HASH, 2 st STRING (BITFIELD u4), 3 lease ZSET, 4 meta HASH, 5 input HASH, 6 redo LIST,
--       7 wake LIST, 8 res HASH, 9 fail HASH, 10 fset ZSET, 11 ferr ZSET, 12 act HASH: every key of the run,
--       '<prefix>:{<run>}:<name>' (layout and fields in _lib.lua and dmap/keys.py).
-- ARGV: none
--
-- Returns -1 if the run does not exist, 0 if it is not aborted (nothing changes), else how many
-- children were recorded ABORTED. The coordinator calls it once the abort's grace period is over,
-- so a finished Map Run never shows children RUNNING. Every lease is dropped (at most the run's
-- permits, 10,000); a child that was RUNNING moves from running to aborted, one granted but not
-- started from pending to aborted. A late completion of such a child is then a duplicate: the
-- first terminal result wins, so nothing is counted twice.

local cfg = redis.call('HMGET', K_RUN, 'mc', 'abort')
if not cfg[1] then
  return -1
end
local reason = cfg[2]
if not reason then
  return 0
end
local now = now_ms()
local n = 0
for _, c in ipairs(redis.call('ZRANGE', K_LEASE, 0, -1)) do
  redis.call('ZREM', K_LEASE, c)
  local s = get_status(c)
  local mv = redis.call('HGET', K_META, c)
  if s < SUCCEEDED and mv then
    local m = parse_meta(mv)
    if s == RUNNING then
      redis.call('HINCRBY', K_RUN, 'i1', -m.items)
      redis.call('HINCRBY', K_RUN, 'e1', -1)
    end
    finish_aborted(c, m, reason, now, s == RUNNING)
    n = n + 1
  elseif s == SUCCEEDED and mv and redis.call('HEXISTS', K_RES, c) == 0 then
    redis.call('HDEL', K_META, c)  -- a leftover lease of a child another token finished
  end
end
return n
