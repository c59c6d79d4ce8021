-- cb_unpark.lua: a worker takes a parked child's resume message.
--
-- KEYS: 1..12 every key of the run (layout in _lib.lua and dmap/keys.py), 13 the task's record HASH.
-- ARGV: child, parked_token, lease_ms, worker
--
-- Returns {1, input, attempt, first, items, resume, answer} when the child is still parked under
-- parked_token with an answer (its lease becomes a run lease of lease_ms, renewed by the worker's
-- heartbeat), else {0}: a duplicate message, or the child ended or was taken over meanwhile.

local rec = KEYS[N_RUN_KEYS + 1]
local c = ARGV[1]
local v = redis.call('HMGET', rec, 'st', 'ct', 'resume', 'ans')
if v[1] ~= 'RESUMING' or v[2] ~= ARGV[2] then
  return { 0 }
end
local m = running_meta(c, ARGV[2])
if not m then
  return { 0 }
end
redis.call('ZADD', K_LEASE, 'XX', now_ms() + tonumber(ARGV[3]), c)
m.worker = ARGV[4]
save_meta(c, m)
redis.call('HSET', rec, 'st', 'DONE')
return { 1, redis.call('HGET', K_INPUT, c) or '', m.attempt, m.first, m.items, v[3], v[4] }
