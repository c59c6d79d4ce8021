-- claim_release.lua: drop an execution's claim (dmap.identity) while this owner holds it.
--
-- KEYS: 1 claim STRING. ARGV: token. Drops the claim only while this token owns it.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
