-- cb_answer.lua: SendTaskSuccess/Failure, or the sweeper's timeout, reaches a distributed child's task.
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
  local timeout_at = v[5] ~= '' and tonumber(v[4]) + tonumber(v[5]) * 1000 or nil
  local beat_at = v[7] ~= '' and tonumber(v[6]) + tonumber(v[7]) * 1000 or nil
  local due = timeout_at
  if beat_at and (not due or beat_at < due) then
    due = beat_at
  end
  if not due then
    return { 'closed' }
  end
  if now < due then
    return { 'notdue', due }
  end
  if timeout_at and now >= timeout_at then
    answer = cjson.encode({ Error = 'States.Timeout',
      Cause = "Task '" .. v[8] .. "' timed out after " .. v[5] .. ' seconds' })
  else
    answer = cjson.encode({ Error = 'States.HeartbeatTimeout',
      Cause = "Task '" .. v[8] .. "' received no SendTaskHeartbeat or answer for " .. v[7] .. ' seconds' })
  end
end
if st == 'WAITING' then
  redis.call('HSET', rec, 'st', 'ANSWERED', 'ans', answer)
  redis.call('LPUSH', KEYS[N_RUN_KEYS + 2], '1')
  redis.call('PEXPIRE', KEYS[N_RUN_KEYS + 2], 600000)
  return { 'answered' }
end
local c = v[2]
local mv = redis.call('HGET', K_META, c)
if not mv or parse_meta(mv).token ~= v[3] or get_status(c) ~= RUNNING or not redis.call('ZSCORE', K_LEASE, c) then
  redis.call('HSET', rec, 'st', 'CLOSED')
  return { 'closed' }
end
redis.call('HSET', rec, 'st', 'RESUMING', 'ans', answer)
redis.call('ZADD', K_LEASE, 'XX', now + tonumber(ARGV[2]), c)
return { 'resume', c, v[3] }
