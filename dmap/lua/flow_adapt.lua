-- flow_adapt.lua: adaptive concurrency (AIMD) of one Map Run, kept in its run HASH.
--
-- KEYS: 1 run HASH '<prefix>:{<run>}:run', 2 meta HASH '<prefix>:{<run>}:meta', 3 wake LIST
--       '<prefix>:{<run>}:wake' (dmap/keys.py).
-- ARGV: 1 op, then per op:
--   'throttle' child      a child saw a throttling error: count it; if adaptive and the child started
--                         after the last cut, cut the effective concurrency (x 0.7, not below the floor).
--                         Children started before the last cut were admitted under the old limit: their
--                         errors say nothing new, so one overload costs one cut (TCP's once per window).
--   'grow'                +1 once as many children succeeded since the last change as the effective
--                         concurrency (one window), up to MaxConcurrency; clamps to a lowered maximum.
--   'on' floor            switch adaptive concurrency on (from MaxConcurrency if it was off); floor 0 keeps
--                         the floor set before (1 if none).
--   'off'                 switch it off (the run is limited by MaxConcurrency alone again; wakes the
--                         coordinator, which may grant more at once).
--   'floor' n             set the floor (and raise the effective concurrency to it).
-- Run HASH fields: mc (MaxConcurrency, 0 = 10000), e2 (children succeeded), ec (effective
-- concurrency; absent = adaptive off), ef (floor), ecut (ms of the last cut), eb (e2 at the last
-- change), fthr (throttling errors counted). acquire.lua grants at most min(mc, ec) permits.
--
-- Returns {-1, 0} for an unknown run, else {adaptive (0/1), effective concurrency (or MaxConcurrency)}.

local MAX_PERMITS = 10000
local v = redis.call('HMGET', KEYS[1], 'mc', 'ec', 'ef', 'ecut', 'eb', 'e2')
if not v[1] then
  return { -1, 0 }
end
local mc = tonumber(v[1])
if mc <= 0 then
  mc = MAX_PERMITS
end
local ec, floor = tonumber(v[2]), math.max(1, tonumber(v[3]) or 1)
local succeeded = tonumber(v[6]) or 0
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op = ARGV[1]

local function set(n)
  ec = n
  redis.call('HSET', KEYS[1], 'ec', string.format('%d', n), 'eb', string.format('%d', succeeded))
end

if op == 'throttle' then
  redis.call('HINCRBY', KEYS[1], 'fthr', 1)
  if ec then
    local started = 0
    local m = redis.call('HGET', KEYS[2], ARGV[2])
    if m then
      started = tonumber(string.match(m, '^%d+:%d+:%d+:(%d+):')) or 0
    end
    if started >= (tonumber(v[4]) or 0) then
      set(math.max(floor, math.min(math.floor(ec * 0.7), ec - 1)))
      redis.call('HSET', KEYS[1], 'ecut', string.format('%d', now))
    end
  end
elseif op == 'grow' then
  if ec then
    if ec > mc then
      set(mc)
    elseif ec < mc and succeeded - (tonumber(v[5]) or 0) >= ec then
      set(ec + 1)
    end
  end
elseif op == 'on' then
  local given = tonumber(ARGV[2])
  if given and given >= 1 then
    floor = given
  end
  redis.call('HSET', KEYS[1], 'ef', string.format('%d', floor))
  if not ec then
    redis.call('HSET', KEYS[1], 'ecut', '0')
    set(math.max(floor, mc))
  elseif ec < floor then
    set(floor)
  end
elseif op == 'off' then
  redis.call('HDEL', KEYS[1], 'ec', 'ecut', 'eb')
  ec = nil
  if redis.call('LLEN', KEYS[3]) == 0 then
    redis.call('LPUSH', KEYS[3], '1') -- more permits now: the coordinator looks again
  end
elseif op == 'floor' then
  floor = math.max(1, tonumber(ARGV[2]))
  redis.call('HSET', KEYS[1], 'ef', string.format('%d', floor))
  if ec and ec < floor then
    set(floor)
  end
end
if ec then
  return { 1, ec }
end
return { 0, mc }
