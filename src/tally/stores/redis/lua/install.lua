-- Install a group's counters computed from one SQL snapshot, and end its rebuild.
-- KEYS[1]      the group's rebuild marker (must still hold ARGV[1])
-- KEYS[2]      the group's snapshot set (outbox ids the snapshot already counts)
-- KEYS[3]      the tenant's applied sorted set
-- KEYS[4..n]   the group's data keys, referred to by index from ARGV[2]
-- ARGV[1]      the marker token this rebuild set
-- ARGV[2]      JSON: {"snap": ["<outbox id>", ...],
--                     "writes": [["del", i] | ["hset", i, field, value, ...]
--                                | ["zadd", i, score, member, ...]]}
-- Returns 0 when installed; 1 when the marker was lost (expired or taken): nothing was written.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 1
end
local plan = cjson.decode(ARGV[2])
redis.call('DEL', KEYS[2])
for _, id in ipairs(plan.snap) do
  if not redis.call('ZSCORE', KEYS[3], id) then
    redis.call('SADD', KEYS[2], id)
  end
end
for _, write in ipairs(plan.writes) do
  local name, key = write[1], KEYS[write[2]]
  if name == 'del' then
    redis.call('DEL', key)
  elseif name == 'hset' then
    redis.call('HSET', key, unpack(write, 3))
  elseif name == 'zadd' then
    redis.call('ZADD', key, unpack(write, 3))
  else
    return redis.error_reply('unknown write ' .. tostring(name))
  end
end
redis.call('DEL', KEYS[1])
return 0
