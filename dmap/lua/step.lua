-- step.lua: one round trip per child of a pack: complete the child that ended, start the next one,
-- and (when a pack arrives) swap the pack's dispatch leases for run leases.
--
-- KEYS: 1 run HASH, 2 st STRING (BITFIELD u4), 3 lease ZSET, 4 meta HASH, 5 input HASH, 6 redo LIST,
--       7 wake LIST, 8 res HASH, 9 fail HASH, 10 fset ZSET, 11 ferr ZSET, 12 act HASH: every key of the run,
--       '<prefix>:{<run>}:<name>' (layout and fields in _lib.lua and dmap/keys.py).
-- ARGV: lease_ms, worker, done_child, done_token, status, record, error, next_child, next_token,
--       then pairs child, token to renew (at most 500 pairs)
--   done_child ... error   as complete.lua's ARGV; done_child '' = nothing to complete
--   next_child, next_token as start.lua's child and token; next_child '' = nothing to start;
--                          next_child '+' = take the next child staged on redo, if a permit is free
--                          (take_child in _lib.lua), with next_token as the nonce of its new token
--   lease_ms, worker       as start.lua's (lease_ms also for the renewals)
--
-- Returns {recorded, aborted, renewed_1 .. renewed_n, start...}: recorded/aborted as complete.lua
-- (0, 0 when nothing was completed), one 1/0 per renewal pair as renew.lua, then start.lua's
-- reply ({1, input, attempt, first, items}, {0} or {2}; nothing when nothing was started). A take
-- ('+') adds the child and its token after start.lua's reply; nothing when nothing was taken.
-- The three parts run in this order with exactly the code of renew.lua, complete.lua and
-- start.lua, so every fencing and counting rule of those scripts holds here too: a completion
-- that pushes the failures over the tolerance makes the start that follows record its child
-- ABORTED, as a separate start.lua call would.

local out = { 0, 0 }
local lease_ms = ARGV[1]
local now = now_ms()
local expiry = now + tonumber(lease_ms)
for i = 10, #ARGV - 1, 2 do
  out[#out + 1] = renew_lease(ARGV[i], ARGV[i + 1], expiry)
end
if ARGV[3] ~= '' then
  local done = complete_child(ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
  out[1], out[2] = done[1], done[2]
end
if ARGV[8] == '+' then
  local c, token, reply = take_child(ARGV[9], lease_ms, ARGV[2])
  if c then
    for _, v in ipairs(reply) do
      out[#out + 1] = v
    end
    out[#out + 1] = c
    out[#out + 1] = token
  end
elseif ARGV[8] ~= '' then
  for _, v in ipairs(start_child(ARGV[8], ARGV[9], lease_ms, ARGV[2])) do
    out[#out + 1] = v
  end
end
return out
