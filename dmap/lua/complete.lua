-- complete.lua: record a child's terminal result (first one wins), release its permit, check tolerance.
--
-- KEYS: 1 run HASH, 2 st STRING (BITFIELD u4), 3 lease ZSET, 4 meta HASH, 5 input HASH, 6 redo LIST,
--       7 wake LIST, 8 res HASH, 9 fail HASH, 10 fset ZSET, 11 ferr ZSET, 12 act HASH: every key of the run,
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

-- The body is complete_child in _lib.lua (step.lua runs the same code).
return complete_child(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
