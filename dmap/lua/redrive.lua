-- redrive.lua: make the FAILED, TIMED_OUT and ABORTED children of one page of the failure index PENDING again.
--
-- KEYS: 1 run HASH, 2 st STRING (BITFIELD u4), 3 lease ZSET, 4 meta HASH, 5 input HASH, 6 redo LIST,
--       7 wake LIST, 8 res HASH, 9 fail HASH, 10 fset ZSET, 11 ferr ZSET, 12 act HASH: every key of the run,
--       '<prefix>:{<run>}:<name>' (layout and fields in _lib.lua and dmap/keys.py).
-- ARGV: after (examine children numbered above it; -1 for the first page), count (children examined
--       per call; the client sends 500), clear_abort ('1' on the first page)
--
-- Returns -1 if the run does not exist, else {reset, examined, last}: how many children were reset,
-- how many entries of the failure index were examined (fewer than count: the index is done), and
-- the number of the last one (the next call's after). Each reset child: status PENDING, its
-- counters move back to pending, its records leave res/fail/fset/ferr (an already written result
-- un-counts resultsWritten), any leftover lease is dropped, its attempt budget starts again and it
-- is queued on redo (its stored input is reused).
-- Every child that ends FAILED, TIMED_OUT or ABORTED enters the failure index (finish in _lib.lua),
-- so walking the index finds them all: the work is per failure, not per child of the run (10,000
-- failures of a 1,000,000-child run are 20 calls of 500), and each call is bounded by count.

if redis.call('HEXISTS', K_RUN, 'mc') == 0 then
  return -1
end
if ARGV[3] == '1' then
  redis.call('HDEL', K_RUN, 'abort')
  redis.call('DEL', K_WAKE)
end
local page = redis.call('ZRANGEBYSCORE', K_FSET, '(' .. ARGV[1], '+inf', 'LIMIT', 0, tonumber(ARGV[2]))
local reset = 0
for _, c in ipairs(page) do
  local s = get_status(c)
  if s >= FAILED then
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
if reset > 0 then
  wake('1')
end
return { reset, #page, page[#page] or ARGV[1] }
