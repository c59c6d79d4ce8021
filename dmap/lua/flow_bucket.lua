-- flow_bucket.lua: take one token of a shared rate limit (GCRA: a token bucket kept as one timestamp).
--
-- KEYS: 1 limit HASH '<prefix>:limit:{<key>}' with fields interval (ms per token), burst (tokens),
--       tat (the theoretical arrival time of the next token, ms of Redis TIME), text (as set).
-- ARGV: 1 max_wait_ms: reserve a token only if it is due within this many ms.
--
-- Returns {-1, 0} when the key has no limit (call at once), {1, wait_ms} when a token is reserved
-- for this caller wait_ms from now (0: call now), {0, wait_ms} when the next token is further away
-- than max_wait_ms (nothing reserved: the caller gives its slot back and asks again later).
-- Reserving hands each waiter its own moment, so waiters sleep once instead of polling, and at most
-- burst + elapsed / interval tokens are ever handed out in any span of time, whoever asks.

local cfg = redis.call('HMGET', KEYS[1], 'interval', 'burst', 'tat')
local interval = tonumber(cfg[1])
if not interval then
  return { -1, 0 }
end
local burst = math.max(1, tonumber(cfg[2]) or 1)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tat = math.max(tonumber(cfg[3]) or now, now)
local wait = math.max(0, tat - (burst - 1) * interval - now)
if wait > tonumber(ARGV[1]) then
  return { 0, math.ceil(wait) }
end
redis.call('HSET', KEYS[1], 'tat', string.format('%.3f', tat + interval))
return { 1, math.ceil(wait) }
