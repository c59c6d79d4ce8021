-- _lib.lua: helpers shared by every run-store script; RedisRunStore prepends this file to each
-- script before register_script (Redis has no include). Not a script on its own.
--
-- KEYS (the same 12 keys, in this order, for every script; see dmap/keys.py; a script's own keys follow, from
-- KEYS[N_RUN_KEYS + 1]):
--   1 run HASH, 2 st STRING (BITFIELD u4), 3 lease ZSET, 4 meta HASH, 5 input HASH, 6 redo LIST,
--   7 wake LIST, 8 res HASH, 9 fail HASH, 10 fset ZSET, 11 ferr ZSET, 12 act HASH
--
-- run HASH fields: mc tc tp ma (config), abort (reason), it et (final totals, declared once: when the reader
-- is exhausted or the run ends), dt dc (totals declared ahead of the reader by a count), cr cc ci (cursor),
-- i<code>/e<code> (items/children per status code), iw ew (results written), rec, dup, aq (acquire.lua's
-- last granting reply, for a retry of the same call).
-- Status codes: 0 PENDING, 1 RUNNING, 2 SUCCEEDED, 3 FAILED, 4 TIMED_OUT, 5 ABORTED.
-- Child numbers are always handled as normalised decimal strings (no leading zeros): BITFIELD
-- rejects offsets like "#007".

local K_RUN, K_ST, K_LEASE, K_META, K_INPUT = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_REDO, K_WAKE, K_RES, K_FAIL, K_FSET, K_FERR = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local K_ACT = KEYS[12]
local N_RUN_KEYS = 12

local PENDING, RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED = 0, 1, 2, 3, 4, 5
local STATUS_NAMES = { [2] = 'SUCCEEDED', [3] = 'FAILED', [4] = 'TIMED_OUT', [5] = 'ABORTED' }
local MAX_PERMITS = 10000
local WORKER_LOST_ERROR = 'Runtime.ExitError'

-- The server clock in ms: every lease is judged by one clock, never by client clocks.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function int(n)
  return string.format('%d', n)
end

local function get_status(c)
  return redis.call('BITFIELD', K_ST, 'GET', 'u4', '#' .. c)[1]
end

local function set_status(c, s)
  redis.call('BITFIELD', K_ST, 'SET', 'u4', '#' .. c, s)
end

local function parse_meta(v)
  local first, items, attempt, started, token, worker = string.match(v, '^(%d+):(%d+):(%d+):(%d+):([^:]*):(.*)$')
  return {
    first = tonumber(first), items = tonumber(items), attempt = tonumber(attempt),
    started = tonumber(started), token = token, worker = worker,
  }
end

local function save_meta(c, m)
  redis.call('HSET', K_META, c,
    string.format('%d:%d:%d:%d:%s:%s', m.first, m.items, m.attempt, m.started, m.token, m.worker))
end

-- Wake the coordinator. At most one "1" waits in the list (one wake-up says "look again"); an
-- ABORT token is always pushed so the coordinator learns of the abort without polling.
local function wake(token)
  if token == 'ABORT' then
    redis.call('LPUSH', K_WAKE, token)
    redis.call('LTRIM', K_WAKE, 0, 7)
  elseif redis.call('LLEN', K_WAKE) == 0 then
    redis.call('LPUSH', K_WAKE, token)
  end
end

-- ToleratedFailureCount/Percentage (strict >); the percentage only once the total is known: the
-- final total, else a declared one (never below the items read so far).
-- Sets the abort flag once; returns 1 if this call set it.
local function check_tolerance()
  local v = redis.call('HMGET', K_RUN, 'tc', 'tp', 'it', 'i3', 'i4', 'abort', 'dt', 'ci')
  if v[6] then
    return 0
  end
  local failed = (tonumber(v[4]) or 0) + (tonumber(v[5]) or 0)
  local over = failed > tonumber(v[1])
  local total = tonumber(v[3])
  if not total and v[7] then
    total = math.max(tonumber(v[7]), tonumber(v[8]) or 0)
  end
  if not over and total then
    over = total > 0 and failed * 100 > tonumber(v[2]) * total
  end
  if over then
    redis.call('HSET', K_RUN, 'abort', 'tolerance')
    wake('ABORT')
    return 1
  end
  return 0
end

-- Count a finished child in the activity hash (dmap/store/activity.py has the same rules): items done
-- (and failed) per time bucket, 1 s wide for the first 10 minutes after the first completion ("t0"),
-- 10 s until 2 hours, 60 s after; and its run time in a histogram of four buckets per doubling.
local function note_activity(m, s)
  local now = now_ms()
  local sec = math.floor(now / 1000)
  local t0 = tonumber(redis.call('HGET', K_ACT, 't0'))
  if not t0 then
    t0 = sec
    redis.call('HSET', K_ACT, 't0', sec)
  end
  local age, width = sec - t0, 60
  if age < 600 then
    width = 1
  elseif age < 7200 then
    width = 10
  end
  local b = int(sec - sec % width)
  redis.call('HINCRBY', K_ACT, 'd' .. b, m.items)
  if s == FAILED or s == TIMED_OUT then
    redis.call('HINCRBY', K_ACT, 'f' .. b, m.items)
  end
  if m.started > 0 and s ~= ABORTED then
    redis.call('HINCRBY', K_ACT, 'h' .. int(math.floor(4 * math.log(math.max(now - m.started, 0) + 1) / math.log(2))), 1)
  end
end

-- Record the first terminal result of child c (meta m). The caller has already moved the
-- running counters if the child was RUNNING.
local function finish(c, m, s, record, err)
  set_status(c, s)
  note_activity(m, s)
  redis.call('HINCRBY', K_RUN, 'i' .. s, m.items)
  redis.call('HINCRBY', K_RUN, 'e' .. s, 1)
  redis.call('HSET', K_RES, c, record)
  if s == SUCCEEDED then
    redis.call('HDEL', K_INPUT, c)
  else
    redis.call('HSET', K_FAIL, c, err .. '\n' .. record)
    redis.call('ZADD', K_FSET, c, c)
    redis.call('ZADD', K_FERR, 0, err .. '\n' .. string.format('%012d', tonumber(c)))
  end
  wake('1')
end

-- ISO-8601 UTC with milliseconds and "Z" (days-to-civil, H. Hinnant): scripts have no os.date.
local function iso(ms)
  local secs = math.floor(ms / 1000)
  local days = math.floor(secs / 86400)
  local sod = secs - days * 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local day = doy - math.floor((153 * mp + 2) / 5) + 1
  local month = mp < 10 and mp + 3 or mp - 9
  local year = yoe + era * 400
  if month <= 2 then
    year = year + 1
  end
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', year, month, day,
    math.floor(sod / 3600), math.floor((sod % 3600) / 60), sod % 60, ms - secs * 1000)
end

-- A child record the store writes itself (worker lost, aborted), in the workers' field order.
local function store_record(c, m, s, err, cause, stop)
  local input = redis.call('HGET', K_INPUT, c) or ''
  local start = m.started > 0 and m.started or stop
  return '{"Child":' .. c .. ',"Index":' .. int(m.first) .. ',"Items":' .. int(m.items)
    .. ',"Status":"' .. STATUS_NAMES[s] .. '","Input":' .. cjson.encode(input)
    .. ',"Error":' .. cjson.encode(err) .. ',"Cause":' .. cjson.encode(cause)
    .. ',"StartDate":"' .. iso(start) .. '","StopDate":"' .. iso(stop) .. '","Attempts":' .. int(m.attempt)
    .. ',"Worker":' .. cjson.encode(m.worker) .. '}'
end

local function items_text(m)
  if m.items == 1 then
    return 'item ' .. int(m.first)
  end
  return 'items ' .. int(m.first) .. '-' .. int(m.first + m.items - 1)
end

-- Record a child ABORTED because the run was aborted before it could finish.
local function finish_aborted(c, m, reason, now, started)
  local cause
  if started then
    cause = 'The Map Run was aborted (' .. reason .. ') and the worker running child ' .. c .. ' ('
      .. items_text(m) .. ') stopped responding.'
  else
    cause = 'The Map Run was aborted (' .. reason .. ') before child ' .. c .. ' (' .. items_text(m) .. ') started.'
  end
  finish(c, m, ABORTED, store_record(c, m, ABORTED, '', cause, now), '')
end

-- Child c's parsed meta if `token` still holds its lease (the meta's token, and a lease entry), else nil.
local function leased_meta(c, token)
  local mv = redis.call('HGET', K_META, c)
  if not mv then
    return nil
  end
  local m = parse_meta(mv)
  if m.token ~= token or not redis.call('ZSCORE', K_LEASE, c) then
    return nil
  end
  return m
end

-- Child c's parsed meta if `token` holds its lease and it is RUNNING (a callback's child), else nil.
local function running_meta(c, token)
  local m = leased_meta(c, token)
  if m and get_status(c) == RUNNING then
    return m
  end
  return nil
end

-- Extend child c's lease to expiry if `token` still holds it; 1 if extended, 0 if lost. A lease
-- that is gone is never re-created: that would admit one child too many (renew.lua, step.lua).
local function renew_lease(c, token, expiry)
  if leased_meta(c, token) then
    redis.call('ZADD', K_LEASE, 'XX', expiry, c)
    return 1
  end
  return 0
end

-- Start child c with its token (fencing): the body of start.lua, shared with step.lua.
-- Returns {1, input, attempt, first, items} = RUN, {0} = STALE, {2} = ABORTED.
local function start_child(c, token, lease_ms, worker)
  local run = redis.call('HMGET', K_RUN, 'mc', 'abort')
  if not run[1] then
    return { 0 }
  end
  local m = leased_meta(c, token)
  if not m then
    return { 0 }
  end
  local s = get_status(c)
  if s >= SUCCEEDED then
    redis.call('ZREM', K_LEASE, c)
    wake('1')
    return { 0 }
  end
  if s == RUNNING then
    -- A redelivered message of a child that already runs under this token.
    return { 0 }
  end
  local now = now_ms()
  if run[2] then
    redis.call('ZREM', K_LEASE, c)
    finish_aborted(c, m, run[2], now, false)
    return { 2 }
  end
  set_status(c, RUNNING)
  redis.call('HINCRBY', K_RUN, 'i1', m.items)
  redis.call('HINCRBY', K_RUN, 'e1', 1)
  redis.call('ZADD', K_LEASE, 'XX', now + tonumber(lease_ms), c)
  m.started = now
  m.worker = worker
  save_meta(c, m)
  return { 1, redis.call('HGET', K_INPUT, c) or '', m.attempt, m.first, m.items }
end

-- Record child c's terminal result: the body of complete.lua, shared with step.lua.
-- Returns {recorded, aborted}.
local function complete_child(c, token, status, record, err)
  if redis.call('HEXISTS', K_RUN, 'mc') == 0 then
    return { 0, 0 }
  end
  local mv = redis.call('HGET', K_META, c)
  local m = nil
  if mv then
    m = parse_meta(mv)
    if m.token == token and redis.call('ZREM', K_LEASE, c) == 1 then
      wake('1')
    end
  end
  local s = get_status(c)
  if s >= SUCCEEDED then
    redis.call('HINCRBY', K_RUN, 'dup', 1)
    if m and s == SUCCEEDED and redis.call('HEXISTS', K_RES, c) == 0 and not redis.call('ZSCORE', K_LEASE, c) then
      redis.call('HDEL', K_META, c)
    end
    return { 0, 0 }
  end
  if not m then
    -- Never granted (or the run was reset): nothing to record.
    return { 0, 0 }
  end
  if s == RUNNING then
    redis.call('HINCRBY', K_RUN, 'i1', -m.items)
    redis.call('HINCRBY', K_RUN, 'e1', -1)
  end
  status = tonumber(status)
  finish(c, m, status, record, err)
  local aborted = 0
  if status == FAILED or status == TIMED_OUT then
    aborted = check_tolerance()
  end
  return { 1, aborted }
end

-- A worker that has just freed a permit takes the next child waiting on redo for itself and starts it:
-- a grant and a start in the script that completed the last child, with no coordinator round trip and no
-- message (the coordinator stages children there, acquire.lua). The same rules as acquire.lua's redo
-- grant (a free permit under MaxConcurrency or the effective concurrency, nothing once aborted, a fresh
-- token '<attempt>-<nonce>', skip entries finished or leased meanwhile; at most 16 examined) and then
-- start_child's. Returns child, token, start reply; or nil when nothing was taken.
local function take_child(nonce, lease_ms, worker)
  local run = redis.call('HMGET', K_RUN, 'mc', 'abort', 'ec')
  if not run[1] or run[2] then
    return nil
  end
  local permits = tonumber(run[1])
  if permits <= 0 then
    permits = MAX_PERMITS
  end
  if run[3] then
    permits = math.min(permits, tonumber(run[3]))
  end
  if permits - redis.call('ZCARD', K_LEASE) <= 0 then
    return nil
  end
  for _ = 1, 16 do
    local c = redis.call('LPOP', K_REDO)
    if not c then
      return nil
    end
    local mv = redis.call('HGET', K_META, c)
    if mv and get_status(c) == PENDING and not redis.call('ZSCORE', K_LEASE, c) then
      local m = parse_meta(mv)
      m.attempt = m.attempt + 1
      m.token = int(m.attempt) .. '-' .. nonce
      save_meta(c, m)
      redis.call('ZADD', K_LEASE, now_ms() + tonumber(lease_ms), c)
      return c, m.token, start_child(c, m.token, lease_ms, worker)
    end
  end
  return nil
end
