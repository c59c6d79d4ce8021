-- count_execution.lua: count one event of an execution once (dmap.metrics_aws: ExecutionsStarted...).
--
-- KEYS: 1 counters HASH  <prefix>:{metrics}:executions  ("<Metric>|<state machine>" -> count),
--       2 events SET     <prefix>:{metrics}:seen:<execution arn>  (the events already counted).
-- ARGV: event ("Started", "Redriven#1", "Failed#0"...), counter field, TTL seconds of the events set.
-- Both keys share the {metrics} hash tag. A coordinator that resumes an execution after a crash
-- reports the same events again: the set makes each count once. Returns 1 if counted now, else 0.
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
return 1
