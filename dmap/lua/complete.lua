-- complete.lua: record a child's terminal result (first one wins), release its permit, check tolerance.
--
-- KEYS: 1 run HASH, 2 st STRING (BITFIELD u4), 3 lease ZSET, 4 meta HASH, 5 input HASH, 6 redo LIST,
--       7 wake LIST, 8 res HASH, 9 fail HASH, 10 fset ZSET, 11 ferr ZSET: every key of the run,
--       '<prefix>:{<run>}:<name>' (layout and fields in _lib.lua and dmap/keys.py).
-- ARGV: child, token, status (2 SUCCEEDED, 3 FAILED, 4 TIMED_OUT, 5 ABORTED), record, error
--   record  the child's result record, JSON text (stored for take_results and, unless it
--           succeeded, in the failure index)
--   error   the record's Error name (the client parses it; no newline), indexed for failures
--
-- Returns {recorded, aborted}: recorded = 1 if this was the child's first terminal result,
-- aborted = 1 if it pushed the failures over the tolerance and set the abort flag.
-- The permit is released only when the token's own lease is held. A completion with a
-- superseded token is still recorded while the child is not terminal (the work was done).
-- A second completion only bumps the "dup" counter.

local c = ARGV[1]
if redis.call('HEXISTS', K_RUN, 'mc') == 0 then
  return { 0, 0 }
end
local mv = redis.call('HGET', K_META, c)
local m = nil
if mv then
  m = parse_meta(mv)
  if m.token == ARGV[2] and redis.call('ZREM', K_LEASE, c) == 1 then
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
local status = tonumber(ARGV[3])
finish(c, m, status, ARGV[4], ARGV[5])
local aborted = 0
if status == FAILED or status == TIMED_OUT then
  aborted = check_tolerance()
end
return { 1, aborted }
