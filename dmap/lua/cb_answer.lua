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
local v = redis.call('HMGET', rec, 'st', 'child', 'ct', 't0', 'to', 'beat', 'hb', 'state')
local st = v[1]
if not st then
  return { 'missing' }
end
if st ~= 'WAITING' and st ~= 'PARKED' then
  return { 'closed' }
end
local answer = ARGV[1]
local now = now_ms()
if ARGV[3] == '1' then
  local reply
  reply, answer = cb_expire(v[4], v[5], v[6], v[7], v[8], now)
  if reply then
    return reply
  end
end
if st == 'WAITING' then
  return cb_answer_waiter(rec, KEYS[N_RUN_KEYS + 2], answer)
end
local c = v[2]
if not running_meta(c, v[3]) then
  redis.call('HSET', rec, 'st', 'CLOSED')
  return { 'closed' }
end
redis.call('HSET', rec, 'st', 'RESUMING', 'ans', answer)
redis.call('ZADD', K_LEASE, 'XX', now + tonumber(ARGV[2]), c)
return { 'resume', c, v[3] }
