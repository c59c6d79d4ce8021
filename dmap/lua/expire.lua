-- expire.lua: set a retention period on every key of a run.
--
-- KEYS: 1 run HASH, 2 st STRING (BITFIELD u4), 3 lease ZSET, 4 meta HASH, 5 input HASH, 6 redo LIST,
--       7 wake LIST, 8 res HASH, 9 fail HASH, 10 fset ZSET, 11 ferr ZSET, 12 act HASH: every key of the run,
--       '<prefix>:{<run>}:<name>' (layout and fields in _lib.lua and dmap/keys.py).
-- ARGV: seconds
--
-- Returns how many keys existed and got the expiry.

local n = 0
for i = 1, #KEYS do
  n = n + redis.call('EXPIRE', KEYS[i], ARGV[1])
end
return n
