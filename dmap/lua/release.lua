-- release.lua: a busy worker gives back the children of its pack it has not started, so that other
-- workers take them instead of waiting behind a long pack-mate.
--
-- KEYS: 1 run HASH, 2 st STRING (BITFIELD u4), 3 lease ZSET, 4 meta HASH, 5 input HASH, 6 redo LIST,
--       7 wake LIST, 8 res HASH, 9 fail HASH, 10 fset ZSET, 11 ferr ZSET, 12 act HASH: every key of the run,
--       '<prefix>:{<run>}:<name>' (layout and fields in _lib.lua and dmap/keys.py).
-- ARGV: pairs child, token (at most 500 pairs)
--
-- Returns how many children were given back. A child is given back only while its token is current,
-- its lease is held and it is PENDING (never started): its lease is dropped (the permit is free at
-- once), it goes to the redo list, where the next acquire re-grants it first with a fresh token,
-- and the coordinator is woken. The attempt is not counted (a busy worker is not a lost one), so
-- the re-grant carries the same attempt number. The old token is then stale: a start with it
-- returns STALE, so the child runs once.

local n = 0
for i = 1, #ARGV - 1, 2 do
  local c = ARGV[i]
  local mv = redis.call('HGET', K_META, c)
  if mv and redis.call('ZSCORE', K_LEASE, c) and get_status(c) == PENDING then
    local m = parse_meta(mv)
    if m.token == ARGV[i + 1] then
      m.attempt = math.max(0, m.attempt - 1)
      save_meta(c, m)
      redis.call('ZREM', K_LEASE, c)
      redis.call('RPUSH', K_REDO, c)
      n = n + 1
    end
  end
end
if n > 0 then
  wake('1')
end
return n
