-- claim_renew.lua: renew an execution's claim (dmap.identity) while this owner holds it.
--
-- KEYS: 1 claim STRING. ARGV: token, claim_ms. Renews the claim unless another owner took it over;
-- a claim that vanished (a Redis restarted without its data) is set again.
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
