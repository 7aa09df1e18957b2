-- Apply a batch of outbox deltas to a tenant's counters, all or nothing, each event once.
-- KEYS[1]      sorted set of applied outbox ids (member: id, score: ARGV[1])
-- KEYS[2..n]   every other key the batch names, referred to by 1-based index from ARGV[2]
-- ARGV[1]      now, epoch ms
-- ARGV[2]      JSON: {"locks": [i, ...],              rebuild markers of every group touched
--                     "guards": [[i, "value"], ...],  keys that must still hold these values
--                     "events": [{"id": "<outbox id>", "groups": [{"warm": i, "field": f|null,
--                        "snap": i, "ops": [op, ...]}]}]}
--   A group is applied only when warm (key i exists, or hash i has field f) and the event is not
--   in its snapshot set (an id found there is removed: that rebuild already counted it). An event
--   may list one group several times (a ticket row holds many changes); the snapshot set is asked
--   once per event and group, so a counted event is skipped for every entry of that group.
--   ops: ["hincrby", i, field, n] | ["incrby", i, n] | ["hmax", i, field, n]
--        | ["zmove", zset i, negatives-hash i, member, score, +1|-1]
--   zmove keeps a member in the sorted set while its running count is 1; a removal that arrives
--   before its addition is remembered in the negatives hash, so moves commute like increments.
-- Returns {0, applied, duplicates} on success; {1, i} when rebuild marker KEYS[i] is set;
--         {2, i} when guard key KEYS[i] changed. Nothing is written unless it returns 0.
local batch = cjson.decode(ARGV[2])

for _, i in ipairs(batch.locks) do
  if redis.call('EXISTS', KEYS[i]) == 1 then return {1, i} end
end
for _, guard in ipairs(batch.guards) do
  if (redis.call('GET', KEYS[guard[1]]) or '') ~= guard[2] then return {2, guard[1]} end
end

local function warm(group)
  if group.field and group.field ~= cjson.null then
    return redis.call('HEXISTS', KEYS[group.warm], group.field) == 1
  end
  return redis.call('EXISTS', KEYS[group.warm]) == 1
end

local function zmove(zset, negatives, member, score, delta)
  if delta > 0 then
    local pending = tonumber(redis.call('HGET', negatives, member) or '0')
    if pending < 0 then
      if redis.call('HINCRBY', negatives, member, 1) == 0 then redis.call('HDEL', negatives, member) end
    else
      redis.call('ZADD', zset, score, member)
    end
  else
    if redis.call('ZREM', zset, member) == 0 then redis.call('HINCRBY', negatives, member, -1) end
  end
end

local applied, duplicates = 0, 0
for _, event in ipairs(batch.events) do
  if redis.call('ZSCORE', KEYS[1], event.id) then
    duplicates = duplicates + 1
  else
    local counted = {}  -- snapshot set index -> whether its rebuild already counted this event
    for _, group in ipairs(event.groups) do
      if counted[group.snap] == nil then
        counted[group.snap] = redis.call('SREM', KEYS[group.snap], event.id) == 1
      end
      if not counted[group.snap] and warm(group) then
        for _, op in ipairs(group.ops) do
          local name, key = op[1], KEYS[op[2]]
          if name == 'hincrby' then
            redis.call('HINCRBY', key, op[3], op[4])
          elseif name == 'incrby' then
            redis.call('INCRBY', key, op[3])
          elseif name == 'hmax' then
            local current = tonumber(redis.call('HGET', key, op[3]) or '0') or 0
            if op[4] > current then redis.call('HSET', key, op[3], op[4]) end
          elseif name == 'zmove' then
            zmove(key, KEYS[op[3]], op[4], op[5], op[6])
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
