-- record_marks.lua: where each child of a range stands for the result writer, in one call.
--
-- KEYS: 1 run HASH, 2 st STRING (BITFIELD u4), 3 lease ZSET, 4 meta HASH, 5 input HASH, 6 redo LIST,
--       7 wake LIST, 8 res HASH, 9 fail HASH, 10 fset ZSET, 11 ferr ZSET, 12 act HASH: every key of the run,
--       '<prefix>:{<run>}:<name>' (layout and fields in _lib.lua and dmap/keys.py); only st and res are read.
-- ARGV: first_child, count (the client sends at most 2,048)
--
-- Returns a string of count characters, one per child: '-' not finished, 'r' finished with its record
-- in res, 'w' finished and its record taken (written to the result files, e.g. before a redrive).
-- Status and record are read in the same atomic step, so a child finishing meanwhile is never 'w'.
-- The result writer passes over a run of 'w' without a round trip per child.

local first = tonumber(ARGV[1])
local count = tonumber(ARGV[2])
-- The statuses of the span in one GETRANGE (BITFIELD u4 #n: the even child is the high nibble of byte n/2).
local low = math.floor(first / 2)
local bytes = redis.call('GETRANGE', K_ST, int(low), int(math.floor((first + count - 1) / 2)))
local out = {}
for c = first, first + count - 1 do
  local b = string.byte(bytes, math.floor(c / 2) - low + 1) or 0
  local s = c % 2 == 0 and math.floor(b / 16) or b % 16
  if s < SUCCEEDED then
    out[#out + 1] = '-'
  elseif redis.call('HEXISTS', K_RES, int(c)) == 1 then
    out[#out + 1] = 'r'
  else
    out[#out + 1] = 'w'
  end
end
return table.concat(out)
