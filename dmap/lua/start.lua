-- start.lua: a worker asks to run a child with its token (fencing).
--
-- KEYS: 1 run HASH, 2 st STRING (BITFIELD u4), 3 lease ZSET, 4 meta HASH, 5 input HASH, 6 redo LIST,
--       7 wake LIST, 8 res HASH, 9 fail HASH, 10 fset ZSET, 11 ferr ZSET, 12 act HASH: every key of the run,
--       '<prefix>:{<run>}:<name>' (layout and fields in _lib.lua and dmap/keys.py).
-- ARGV: child, token, lease_ms, worker
--
-- Returns {1, input, attempt, first, items} = RUN, {0} = STALE, {2} = ABORTED.
-- RUN only if the token is the child's current token, its lease is held and the child is
-- PENDING: the child becomes RUNNING and the dispatch lease becomes a run lease of lease_ms.
-- In an aborted run the same check records the child ABORTED and releases its permit.
-- A current token whose child already finished releases its leftover lease.

-- The body is start_child in _lib.lua (step.lua runs the same code).
return start_child(ARGV[1], ARGV[2], ARGV[3], ARGV[4])
