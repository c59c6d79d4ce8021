-- set_total.lua: declare the final totals once the reader is exhausted.
--
-- KEYS: the 11 run keys (see _lib.lua / dmap/keys.py).
-- ARGV: total_items, total_children
--
-- Returns -1 if the run does not exist, else 1 if the percentage tolerance (judged only from now
-- on) aborts the run, 0 if not.

if redis.call('HEXISTS', K_RUN, 'mc') == 0 then
  return -1
end
redis.call('HSET', K_RUN, 'it', ARGV[1], 'et', ARGV[2])
return check_tolerance()
