-- _cb.lua: helpers shared by the callback scripts that answer a task (cb_answer.lua, cb_top.lua);
-- dmap/callbacks.py prepends this file to them (Redis has no include). Not a script on its own.
-- A task record keeps t0 (wait start, ms), to (TimeoutSeconds), beat (last heartbeat, ms), hb
-- (HeartbeatSeconds) and state (the Task state's name); to and hb are '' when not set.

-- When the task times out (nil without TimeoutSeconds) and when it is next due to time out or miss
-- a heartbeat, whichever is first (nil with neither).
local function cb_due(t0, to, beat, hb)
  local timeout_at = to ~= '' and tonumber(t0) + tonumber(to) * 1000 or nil
  local beat_at = hb ~= '' and tonumber(beat) + tonumber(hb) * 1000 or nil
  local due = timeout_at
  if beat_at and (not due or beat_at < due) then
    due = beat_at
  end
  return timeout_at, due
end

-- The error answer of a task found due at `now`: States.Timeout if its TimeoutSeconds passed, else
-- States.HeartbeatTimeout.
local function cb_expired_answer(timeout_at, now, state, to, hb)
  if timeout_at and now >= timeout_at then
    return cjson.encode({ Error = 'States.Timeout',
      Cause = "Task '" .. state .. "' timed out after " .. to .. ' seconds' })
  end
  return cjson.encode({ Error = 'States.HeartbeatTimeout',
    Cause = "Task '" .. state .. "' received no SendTaskHeartbeat or answer for " .. hb .. ' seconds' })
end

-- A task record's fields: st, t0, to, beat, hb, state, then `...`; or (nil, the script's reply) when
-- there is no such record ({'missing'}) or its task no longer waits ({'closed'}).
local function cb_open(rec, ...)
  local v = redis.call('HMGET', rec, 'st', 't0', 'to', 'beat', 'hb', 'state', ...)
  if not v[1] then
    return nil, { 'missing' }
  end
  if v[1] ~= 'WAITING' and v[1] ~= 'PARKED' then
    return nil, { 'closed' }
  end
  return v, nil
end

-- The answer to record on the task of fields `v` (cb_open): `answer` itself unless `expire` (the
-- sweeper's call), then its error answer if it timed out or missed a heartbeat at `now`. Returns
-- (the script's reply, nil) instead when the sweeper has nothing to do: {'closed'} without
-- TimeoutSeconds and HeartbeatSeconds, {'notdue', due_ms} when not yet due.
local function cb_outcome(v, now, expire, answer)
  if not expire then
    return nil, answer
  end
  local timeout_at, due = cb_due(v[2], v[3], v[4], v[5])
  if not due then
    return { 'closed' }, nil
  end
  if now < due then
    return { 'notdue', due }, nil
  end
  return nil, cb_expired_answer(timeout_at, now, v[6], v[3], v[5])
end

-- Record `answer` on a task waited for in its thread and wake that waiter (its wake LIST `wake`).
local function cb_answer_waiter(rec, wake, answer)
  redis.call('HSET', rec, 'st', 'ANSWERED', 'ans', answer)
  redis.call('LPUSH', wake, '1')
  redis.call('PEXPIRE', wake, 600000)
  return { 'answered' }
end
