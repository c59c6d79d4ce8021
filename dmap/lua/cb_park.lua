-- cb_park.lua: a distributed child waiting for its task token lets go of its worker slot.
--
-- KEYS: 1..12 every key of the run (layout in _lib.lua and dmap/keys.py), 13 the task's record HASH
--       '<prefix>:{<run>}:cb:<id>' (fields in dmap/callbacks.py).
-- ARGV: child, token (the child's current store token), parked_token, parked_lease_ms, [as]: the record's
--       state after parking (default PARKED; RESUMING for a child parked until a rate-limit token is
--       near, whose resume message is already on its way with a countdown)
--
-- Returns {1, answer} when the task was answered while its handler ran (the worker goes on in
-- its slot), {2} when the child is parked, {0} when the child is no longer this worker's (its
-- lease was lost or superseded: the worker lets go as well).
-- Parking swaps the child's store token for parked_token, so the worker's heartbeat can no longer
-- renew (shorten) the lease, and sets the lease to parked_lease_ms from now: the child keeps its
-- MaxConcurrency permit and stays RUNNING in the counts while no worker holds it. Its TimeoutSeconds
-- and HeartbeatSeconds are enforced by the callback sweeper (cb_answer.lua), not by this lease.

local rec = KEYS[N_RUN_KEYS + 1]
local c = ARGV[1]
local st = redis.call('HGET', rec, 'st')
if st == 'ANSWERED' then
  redis.call('HSET', rec, 'st', 'DONE')
  return { 1, redis.call('HGET', rec, 'ans') }
end
if st ~= 'WAITING' then
  return { 0 }
end
local m = running_meta(c, ARGV[2])
if not m then
  return { 0 }
end
m.token = ARGV[3]
save_meta(c, m)
redis.call('ZADD', K_LEASE, 'XX', now_ms() + tonumber(ARGV[4]), c)
redis.call('HSET', rec, 'st', ARGV[5] or 'PARKED', 'ct', ARGV[3])
return { 2 }
