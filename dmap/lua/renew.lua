-- renew.lua: heartbeat; extend the leases that are still held by the given tokens.
--
-- KEYS: 1 run HASH, 2 st STRING (BITFIELD u4), 3 lease ZSET, 4 meta HASH, 5 input HASH, 6 redo LIST,
--       7 wake LIST, 8 res HASH, 9 fail HASH, 10 fset ZSET, 11 ferr ZSET, 12 act HASH: every key of the run,
--       '<prefix>:{<run>}:<name>' (layout and fields in _lib.lua and dmap/keys.py).
-- ARGV: lease_ms, then pairs child, token (the client sends at most 500 pairs per call)
--
-- Returns one 1/0 per pair: 1 = extended to now + lease_ms, 0 = lost (reclaimed, superseded or
-- released). A lease that is gone is never re-created: that would admit one child too many.

local now = now_ms()
local expiry = now + tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV - 1, 2 do
  out[#out + 1] = renew_lease(ARGV[i], ARGV[i + 1], expiry)
end
return out
