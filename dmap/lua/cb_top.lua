-- cb_top.lua: SendTaskSuccess/Failure, SendTaskHeartbeat or a timeout reaches a task that waits in
-- its thread (a top-level execution's, or a child's that cannot park). Standalone: not prefixed
-- with _lib.lua, it touches no run keys.
--
-- KEYS: 1 the task's record HASH '<prefix>:[{<run>}:]cb:<id>', 2 its wake LIST.
-- ARGV: answer (JSON text), mode ("answer", "expire": only if TimeoutSeconds/HeartbeatSeconds
--       passed, with the matching States.* error, "beat": SendTaskHeartbeat)
--
-- Returns {'missing'}, {'closed'}, {'notdue', due_ms}, {'answered'} or {'beat', due_ms} (due_ms -1
-- when the task has neither TimeoutSeconds nor HeartbeatSeconds).

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rec = KEYS[1]
local v = redis.call('HMGET', rec, 'st', 't0', 'to', 'beat', 'hb', 'state')
local st = v[1]
if not st then
  return { 'missing' }
end
if st ~= 'WAITING' and st ~= 'PARKED' then
  return { 'closed' }
end
if ARGV[2] == 'beat' then
  redis.call('HSET', rec, 'beat', now)
  v[4] = tostring(now)
end
local timeout_at = v[3] ~= '' and tonumber(v[2]) + tonumber(v[3]) * 1000 or nil
local beat_at = v[5] ~= '' and tonumber(v[4]) + tonumber(v[5]) * 1000 or nil
local due = timeout_at
if beat_at and (not due or beat_at < due) then
  due = beat_at
end
if ARGV[2] == 'beat' then
  return { 'beat', due or -1 }
end
local answer = ARGV[1]
if ARGV[2] == 'expire' then
  if not due then
    return { 'closed' }
  end
  if now < due then
    return { 'notdue', due }
  end
  if timeout_at and now >= timeout_at then
    answer = cjson.encode({ Error = 'States.Timeout',
      Cause = "Task '" .. v[6] .. "' timed out after " .. v[3] .. ' seconds' })
  else
    answer = cjson.encode({ Error = 'States.HeartbeatTimeout',
      Cause = "Task '" .. v[6] .. "' received no SendTaskHeartbeat or answer for " .. v[5] .. ' seconds' })
  end
end
if st == 'PARKED' then
  return { 'parked' }
end
redis.call('HSET', rec, 'st', 'ANSWERED', 'ans', answer)
redis.call('LPUSH', KEYS[2], '1')
redis.call('PEXPIRE', KEYS[2], 600000)
return { 'answered' }
