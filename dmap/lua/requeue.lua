-- requeue.lua: a restarted coordinator takes back the children it was granted but never started.
--
-- KEYS: 1 run HASH, 2 st STRING (BITFIELD u4), 3 lease ZSET, 4 meta HASH, 5 input HASH, 6 redo LIST,
--       7 wake LIST, 8 res HASH, 9 fail HASH, 10 fset ZSET, 11 ferr ZSET, 12 act HASH: every key of the run,
--       '<prefix>:{<run>}:<name>' (layout and fields in _lib.lua and dmap/keys.py).
-- ARGV: (none)
--
-- Returns how many leases were expired. Every lease of a PENDING child (granted, maybe never sent)
-- is made to expire now, without counting an attempt, so the next acquire re-grants the child with
-- a fresh token; a message that was sent after all then arrives with a stale token and is ignored.
-- Leases of RUNNING children are kept: their workers are alive and renew them.

local now = now_ms()
local n = 0
for _, c in ipairs(redis.call('ZRANGE', K_LEASE, 0, -1)) do
  if get_status(c) == PENDING then
    local mv = redis.call('HGET', K_META, c)
    if mv then
      local m = parse_meta(mv)
      m.attempt = math.max(0, m.attempt - 1)  -- a resume is not a lost worker
      save_meta(c, m)
    end
    redis.call('ZADD', K_LEASE, now - 1, c)
    n = n + 1
  end
end
return n
