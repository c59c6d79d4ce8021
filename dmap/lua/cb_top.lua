-- cb_top.lua: SendTaskSuccess/Failure, SendTaskHeartbeat or a timeout reaches a task that waits in
-- its thread (a top-level execution's, or a child's that cannot park). Prefixed with _cb.lua only, not
-- with _lib.lua: it touches no run keys.
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
local v, closed = cb_open(rec)
if not v then
  return closed
end
if ARGV[2] == 'beat' then
  redis.call('HSET', rec, 'beat', now)
  local _, due = cb_due(v[2], v[3], tostring(now), v[5])
  return { 'beat', due or -1 }
end
local reply, answer = cb_outcome(v, now, ARGV[2] == 'expire', ARGV[1])
if reply then
  return reply
end
if v[1] == 'PARKED' then
  return { 'parked' }
end
return cb_answer_waiter(rec, KEYS[2], answer)
