-- claim.lua: take an execution's claim (dmap.identity): one live process runs an execution.
--
-- KEYS: 1 claim STRING (execution -> owner "host:pid:token"), 2 detached lease ZSET (dmap.detach).
-- ARGV: owner, claim_ms, arn, dead owner ('' or the value of a claim whose process is known to be dead).
-- Claims an execution nobody runs: no live claim (or only the dead one), not waiting as a detached task.
if redis.call('ZSCORE', KEYS[2], ARGV[3]) then return 0 end
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[4] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
