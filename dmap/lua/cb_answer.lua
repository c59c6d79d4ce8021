-- cb_answer.lua: SendTaskSuccess/Failure, or the sweeper's timeout, reaches a distributed child's task.
-- Prefixed with _lib.lua and _cb.lua.
--
-- KEYS: 1..12 every key of the run (layout in _lib.lua and dmap/keys.py), 13 the task's record HASH,
--       13 its wake LIST (an in-slot waiter blocks on it).
-- ARGV: answer (JSON text), resume_lease_ms, expire ("1": answer only if TimeoutSeconds or
--       HeartbeatSeconds passed, with the matching States.* error; "0": answer now)
--
-- Returns {'missing'} (no such task), {'closed'} (answered before, timed out, or its child ended or
-- was taken over), {'notdue', due_ms} (expire: not yet), {'answered'} (an in-slot waiter gets it),
-- or {'resume', child, parked_token}: the child was parked; its lease now expires resume_lease_ms
-- from now unless the worker that takes the resume message renews it — if that message is lost,
-- the lease expires, the coordinator re-dispatches the child, and its new start finds the answer.

local rec = KEYS[N_RUN_KEYS + 1]
local v, closed = cb_open(rec, 'child', 'ct')
if not v then
  return closed
end
local now = now_ms()
local reply, answer = cb_outcome(v, now, ARGV[3] == '1', ARGV[1])
if reply then
  return reply
end
if v[1] == 'WAITING' then
  return cb_answer_waiter(rec, KEYS[N_RUN_KEYS + 2], answer)
end
local c, ct = v[7], v[8]
if not running_meta(c, ct) then
  redis.call('HSET', rec, 'st', 'CLOSED')
  return { 'closed' }
end
redis.call('HSET', rec, 'st', 'RESUMING', 'ans', answer)
redis.call('ZADD', K_LEASE, 'XX', now + tonumber(ARGV[2]), c)
return { 'resume', c, ct }
