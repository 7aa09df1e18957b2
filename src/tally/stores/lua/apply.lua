-- Apply a batch of outbox deltas to a tenant's counters, all or nothing, each event once.
-- KEYS[1]      sorted set of applied outbox ids (member: id, score: ARGV[1])
-- KEYS[2..n]   every other key the batch names, referred to by index from ARGV[2]
-- ARGV[1]      now, epoch ms
-- ARGV[2]      JSON: [{"id": "<outbox id>", "groups": [{"warm": i, "lock": i, "snap": i,
--                 "ops": [["hincrby", i, field, n] | ["incrby", i, n] | ["hmax", i, field, n]
--                         | ["zadd", i, score, member] | ["zrem", i, member]
--                         | ["sadd", i, member] | ["srem", i, member]]}]}]
-- Returns {0, applied, duplicates} on success;
--         {1, i} when the rebuild marker KEYS[i] is set (nothing was written; retry later).
local batch = cjson.decode(ARGV[2])
local applied, duplicates = 0, 0

for _, event in ipairs(batch) do
  for _, group in ipairs(event.groups) do
    if redis.call('EXISTS', KEYS[group.lock]) == 1 then
      return {1, group.lock}
    end
  end
end

for _, event in ipairs(batch) do
  if redis.call('ZSCORE', KEYS[1], event.id) then
    duplicates = duplicates + 1
  else
    for _, group in ipairs(event.groups) do
      local counted = redis.call('SREM', KEYS[group.snap], event.id) == 1
      if not counted and redis.call('EXISTS', KEYS[group.warm]) == 1 then
        for _, op in ipairs(group.ops) do
          local name, key = op[1], KEYS[op[2]]
          if name == 'hincrby' then
            redis.call('HINCRBY', key, op[3], op[4])
          elseif name == 'incrby' then
            redis.call('INCRBY', key, op[3])
          elseif name == 'hmax' then
            local current = tonumber(redis.call('HGET', key, op[3]) or '0') or 0
            if op[4] > current then redis.call('HSET', key, op[3], op[4]) end
          elseif name == 'zadd' then
            redis.call('ZADD', key, op[3], op[4])
          elseif name == 'zrem' then
            redis.call('ZREM', key, op[3])
          elseif name == 'sadd' then
            redis.call('SADD', key, op[3])
          elseif name == 'srem' then
            redis.call('SREM', key, op[3])
          else
            return redis.error_reply('unknown op ' .. tostring(name))
          end
        end
      end
    end
    redis.call('ZADD', KEYS[1], ARGV[1], event.id)
    applied = applied + 1
  end
end
return {0, applied, duplicates}
