-- start.lua: a worker asks to run a child with its token (fencing).
--
-- KEYS: 1 run HASH, 2 st STRING (BITFIELD u4), 3 lease ZSET, 4 meta HASH, 5 input HASH, 6 redo LIST,
--       7 wake LIST, 8 res HASH, 9 fail HASH, 10 fset ZSET, 11 ferr ZSET: every key of the run,
--       '<prefix>:{<run>}:<name>' (layout and fields in _lib.lua and dmap/keys.py).
-- ARGV: child, token, lease_ms, worker
--
-- Returns {1, input, attempt, first, items} = RUN, {0} = STALE, {2} = ABORTED.
-- RUN only if the token is the child's current token, its lease is held and the child is
-- PENDING: the child becomes RUNNING and the dispatch lease becomes a run lease of lease_ms.
-- In an aborted run the same check records the child ABORTED and releases its permit.
-- A current token whose child already finished releases its leftover lease.

local c = ARGV[1]
local run = redis.call('HMGET', K_RUN, 'mc', 'abort')
if not run[1] then
  return { 0 }
end
local mv = redis.call('HGET', K_META, c)
if not mv then
  return { 0 }
end
local m = parse_meta(mv)
if m.token ~= ARGV[2] or not redis.call('ZSCORE', K_LEASE, c) then
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
redis.call('ZADD', K_LEASE, 'XX', now + tonumber(ARGV[3]), c)
m.started = now
m.worker = ARGV[4]
save_meta(c, m)
return { 1, redis.call('HGET', K_INPUT, c) or '', m.attempt, m.first, m.items }
