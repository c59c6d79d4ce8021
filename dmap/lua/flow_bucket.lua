-- flow_bucket.lua: take one token of a shared rate limit (GCRA: a token bucket kept as one timestamp).
--
-- KEYS: 1 limit HASH '<prefix>:limit:{<key>}' with fields interval (ms per token), burst (tokens),
--       tat (the theoretical arrival time of the next token, ms of Redis TIME), text (as set).
-- ARGV: 1 max_wait_ms: reserve a token only if it is due within this many ms.
--       2 not_before_ms (optional, default 0): the token may not be due sooner than this many ms
--         from now (a caller that holds another key's token for then asks this key for the same moment).
--
-- Returns {-1, 0, 0} when the key has no limit (call at once), {1, wait_ms, interval_us} when a
-- token is reserved for this caller wait_ms from now (0: call now), {0, wait_ms, interval_us} when
-- the next token is further away than max_wait_ms (nothing reserved: the caller asks again later).
-- (interval_us: the limit's interval in microseconds, so the caller knows how late is too late).
-- Reserving hands each waiter its own moment, so waiters sleep once instead of polling, and at most
-- burst + elapsed / interval tokens are ever handed out in any span of time, whoever asks.

local cfg = redis.call('HMGET', KEYS[1], 'interval', 'burst', 'tat')
local interval = tonumber(cfg[1])
if not interval then
  return { -1, 0, 0 }
end
local burst = math.max(1, tonumber(cfg[2]) or 1)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tat = math.max(tonumber(cfg[3]) or now, now)
local at = math.max(tat - (burst - 1) * interval, now + math.max(0, tonumber(ARGV[2]) or 0))
local wait = at - now
if wait > tonumber(ARGV[1]) then
  return { 0, math.ceil(wait), math.ceil(interval * 1000) }
end
redis.call('HSET', KEYS[1], 'tat', string.format('%.3f', math.max(tat, at) + interval))
return { 1, math.ceil(wait), math.ceil(interval * 1000) }
