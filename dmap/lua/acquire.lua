-- acquire.lua: reclaim expired leases, then grant permits (redo children first, then new ones).
--
-- KEYS: 1 run HASH, 2 st STRING (BITFIELD u4), 3 lease ZSET, 4 meta HASH, 5 input HASH, 6 redo LIST,
--       7 wake LIST, 8 res HASH, 9 fail HASH, 10 fset ZSET, 11 ferr ZSET, 12 act HASH: every key of the run,
--       '<prefix>:{<run>}:<name>' (layout and fields in _lib.lua and dmap/keys.py).
-- ARGV: dispatch_lease_ms, nonce, max_redo, stage, then 5 values per new child:
--       child, first, items, cursor, input
--   dispatch_lease_ms  how long a granted child may wait in the queue before START
--   nonce              random text from the client, new for every call; tokens are "<attempt>-<nonce><n in hex>".
--                      A call repeated with the same nonce (a retry after a lost reply) gets the
--                      reply of the first one, kept in the run hash's field aq, and changes nothing
--   max_redo           examine at most this many redo entries per call (bounded work); when redo
--                      children are left, no new child is granted and the coordinator is woken
--   stage              when every permit is out, stage new children up to this many on the redo list
--                      (0: never): stored as a grant stores them (meta with attempt 0, input, cursor
--                      write-ahead) but without a lease, so they hold no permit. A worker that frees a
--                      permit takes the next one itself in the same script (step.lua, take_child in
--                      _lib.lua), and an acquire grants them first like any redo child: on a resume, an
--                      abort or a redrive they are exactly the PENDING children on redo that exist today
--
-- Returns -1 if the run does not exist, else
--   {granted_new, wait_ms, reclaimed, held, permits, child_1, token_1, attempt_1, child_2, ...}
-- wait_ms is the time until the earliest lease expires (-1 when no lease is held); held is the
-- number of leases held after this call and permits the run's permits (10000 for MaxConcurrency 0;
-- the effective concurrency 'ec' when adaptive concurrency is on and lower, see flow_adapt.lua):
-- the coordinator sizes packs and paces its grants from them without another round trip.
--
-- Reclaim (at most 256 expired leases per call): an expired lease of a PENDING or RUNNING child
-- sends it back to PENDING and to the redo list; if its attempts reached max_attempts it is
-- instead completed FAILED (Runtime.ExitError), and in an aborted run it is completed ABORTED.
-- Granting a new child stores its meta and input and moves the cursor in the same step
-- (write-ahead resume). Nothing is granted once the run is aborted.

local now = now_ms()
local cfg = redis.call('HMGET', K_RUN, 'mc', 'ma', 'abort', 'cc', 'aq', 'ec')
if not cfg[1] then
  return -1
end
if cfg[5] then
  -- The same call again (its reply was lost, e.g. Redis restarted from its AOF just after running it, and
  -- the client retried): answer what it was granted, never grant it twice nor leave its children unsent.
  local nonce, reply = string.match(cfg[5], '^([^\n]*)\n(.*)$')
  if nonce == ARGV[2] then
    return cjson.decode(reply)
  end
end
local max_attempts = tonumber(cfg[2])
local aborted = cfg[3]

local dead = redis.call('ZRANGEBYSCORE', K_LEASE, '-inf', now, 'LIMIT', 0, 256)
for _, c in ipairs(dead) do
  redis.call('ZREM', K_LEASE, c)
  local s = get_status(c)
  local mv = redis.call('HGET', K_META, c)
  if s < SUCCEEDED and mv then
    local m = parse_meta(mv)
    if s == RUNNING then
      redis.call('HINCRBY', K_RUN, 'i1', -m.items)
      redis.call('HINCRBY', K_RUN, 'e1', -1)
    end
    if aborted then
      finish_aborted(c, m, aborted, now, s == RUNNING)
    elseif m.attempt >= max_attempts then
      local worker = m.worker ~= '' and m.worker or 'none'
      local times = m.attempt == 1 and ' time' or ' times'
      local cause = 'The worker running child ' .. c .. ' (' .. items_text(m) .. ') stopped responding '
        .. int(m.attempt) .. times .. ' (lease expired); giving up. Last worker: ' .. worker
      finish(c, m, FAILED, store_record(c, m, FAILED, WORKER_LOST_ERROR, cause, now), WORKER_LOST_ERROR)
      if check_tolerance() == 1 then
        aborted = 'tolerance'
      end
    else
      if s == RUNNING then
        set_status(c, PENDING)
      end
      redis.call('RPUSH', K_REDO, c)
    end
  elseif s == SUCCEEDED and mv and redis.call('HEXISTS', K_RES, c) == 0 then
    -- A leftover lease of a child another token finished and whose result was taken.
    redis.call('HDEL', K_META, c)
  end
end
if #dead > 0 then
  redis.call('HINCRBY', K_RUN, 'rec', #dead)
end

local out = { 0, -1, #dead, 0, 0 }
if not aborted then
  local permits = tonumber(cfg[1])
  if permits <= 0 then
    permits = MAX_PERMITS
  end
  if cfg[6] then -- adaptive concurrency (flow_adapt.lua): the effective limit, never above MaxConcurrency
    permits = math.min(permits, tonumber(cfg[6]))
  end
  local free = permits - redis.call('ZCARD', K_LEASE)
  local nonce = ARGV[2]
  local n = 0

  local budget = tonumber(ARGV[3])
  while free > 0 and budget > 0 do
    local c = redis.call('LPOP', K_REDO)
    if not c then
      break
    end
    budget = budget - 1
    local mv = redis.call('HGET', K_META, c)
    -- Skip entries whose child finished meanwhile (a late completion) or is leased again.
    if mv and get_status(c) == PENDING and not redis.call('ZSCORE', K_LEASE, c) then
      local m = parse_meta(mv)
      m.attempt = m.attempt + 1
      n = n + 1
      m.token = int(m.attempt) .. '-' .. nonce .. string.format('%x', n)
      save_meta(c, m)
      redis.call('ZADD', K_LEASE, now + tonumber(ARGV[1]), c)
      out[#out + 1] = c
      out[#out + 1] = m.token
      out[#out + 1] = m.attempt
      free = free - 1
    end
  end

  if budget == 0 and free > 0 and redis.call('LLEN', K_REDO) > 0 then
    -- Out of budget with redo children left: grant no new child before them (redo first) and
    -- wake the coordinator so it calls again at once.
    free = 0
    wake('1')
  end

  local next_child = tonumber(cfg[4]) or 0
  local last = nil
  local granted_new = 0
  -- Staging only once every permit is out and no reclaimed child waits beyond the budget.
  local room = -1
  for i = 5, #ARGV - 4, 5 do
    local child = tonumber(ARGV[i])
    if child < next_child then
      -- Already granted by an earlier call (a replaying coordinator): consume it, grant nothing.
      granted_new = granted_new + 1
    elseif free <= 0 then
      if room < 0 then
        room = budget > 0 and tonumber(ARGV[4]) - redis.call('LLEN', K_REDO) or 0
      end
      if room <= 0 then
        break
      end
      local c = int(child)
      save_meta(c, { first = tonumber(ARGV[i + 1]), items = tonumber(ARGV[i + 2]), attempt = 0, started = 0,
        token = '', worker = '' })
      redis.call('HSET', K_INPUT, c, ARGV[i + 4])
      redis.call('RPUSH', K_REDO, c)
      room = room - 1
      granted_new = granted_new + 1
      next_child = child + 1
      last = i
    else
      local c = int(child)
      n = n + 1
      local token = '1-' .. nonce .. string.format('%x', n)
      save_meta(c, { first = tonumber(ARGV[i + 1]), items = tonumber(ARGV[i + 2]), attempt = 1, started = 0,
        token = token, worker = '' })
      redis.call('HSET', K_INPUT, c, ARGV[i + 4])
      redis.call('ZADD', K_LEASE, now + tonumber(ARGV[1]), c)
      out[#out + 1] = c
      out[#out + 1] = token
      out[#out + 1] = 1
      free = free - 1
      granted_new = granted_new + 1
      next_child = child + 1
      last = i
    end
  end
  if last then
    redis.call('HSET', K_RUN, 'cr', ARGV[last + 3], 'cc', int(next_child),
      'ci', int(tonumber(ARGV[last + 1]) + tonumber(ARGV[last + 2])))
  end
  out[1] = granted_new
end

local limit = tonumber(cfg[1])
if limit <= 0 then
  limit = MAX_PERMITS
end
out[4] = redis.call('ZCARD', K_LEASE)
out[5] = cfg[6] and math.min(limit, tonumber(cfg[6])) or limit
local first = redis.call('ZRANGE', K_LEASE, 0, 0, 'WITHSCORES')
if first[2] then
  out[2] = math.max(0, tonumber(first[2]) - now)
end
if #out > 5 then
  -- Kept until the next call: the reply a retry of this very call (same nonce) gets.
  redis.call('HSET', K_RUN, 'aq', ARGV[2] .. '\n' .. cjson.encode(out))
end
return out
