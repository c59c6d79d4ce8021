-- expire.lua: set a retention period on every key of a run.
--
-- KEYS: the 11 run keys (see _lib.lua / dmap/keys.py).
-- ARGV: seconds
--
-- Returns how many keys existed and got the expiry.

local n = 0
for i = 1, #KEYS do
  n = n + redis.call('EXPIRE', KEYS[i], ARGV[1])
end
return n
