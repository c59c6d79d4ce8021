-- redrive.lua: make the FAILED, TIMED_OUT and ABORTED children of one chunk PENDING again.
--
-- KEYS: 1 run HASH, 2 st STRING (BITFIELD u4), 3 lease ZSET, 4 meta HASH, 5 input HASH, 6 redo LIST,
--       7 wake LIST, 8 res HASH, 9 fail HASH, 10 fset ZSET, 11 ferr ZSET: every key of the run,
--       '<prefix>:{<run>}:<name>' (layout and fields in _lib.lua and dmap/keys.py).
-- ARGV: first_child (even), count (the client sends at most 8192), clear_abort ('1' on the first chunk)
--
-- Returns -1 if the run does not exist, else how many children were reset. Each reset child:
-- status PENDING, its counters move back to pending, its records leave res/fail/fset/ferr (an
-- already written result un-counts resultsWritten), any leftover lease is dropped, its attempt
-- budget starts again and it is queued on redo (its stored input is reused).
-- The client scans the status string in chunks so no call does unbounded work.

if redis.call('HEXISTS', K_RUN, 'mc') == 0 then
  return -1
end
if ARGV[3] == '1' then
  redis.call('HDEL', K_RUN, 'abort')
  redis.call('DEL', K_WAKE)
end
local first = tonumber(ARGV[1])
local count = tonumber(ARGV[2])
local bytes = ''
if count >= 2 then
  bytes = redis.call('GETRANGE', K_ST, int(math.floor(first / 2)), int(math.floor((first + count) / 2) - 1))
end
local reset = 0
for b = 1, #bytes do
  local byte = string.byte(bytes, b)
  for half = 0, 1 do
    -- BITFIELD u4 #n: the even child is the high nibble of byte n/2.
    local s = half == 0 and math.floor(byte / 16) or byte % 16
    if s >= FAILED then
      local c = int(first + (b - 1) * 2 + half)
      set_status(c, PENDING)
      local mv = redis.call('HGET', K_META, c)
      local m = mv and parse_meta(mv) or { first = 0, items = 1, attempt = 0, started = 0, token = '', worker = '' }
      redis.call('HINCRBY', K_RUN, 'i' .. s, -m.items)
      redis.call('HINCRBY', K_RUN, 'e' .. s, -1)
      if redis.call('HDEL', K_RES, c) == 0 then
        redis.call('HINCRBY', K_RUN, 'iw', -m.items)
        redis.call('HINCRBY', K_RUN, 'ew', -1)
      end
      local fv = redis.call('HGET', K_FAIL, c)
      if fv then
        local err = string.match(fv, '^([^\n]*)\n')
        redis.call('ZREM', K_FERR, err .. '\n' .. string.format('%012d', tonumber(c)))
        redis.call('HDEL', K_FAIL, c)
      end
      redis.call('ZREM', K_FSET, c)
      redis.call('ZREM', K_LEASE, c)
      if mv then
        m.attempt = 0
        save_meta(c, m)
      end
      redis.call('RPUSH', K_REDO, c)
      reset = reset + 1
    end
  end
end
if reset > 0 then
  wake('1')
end
return reset
