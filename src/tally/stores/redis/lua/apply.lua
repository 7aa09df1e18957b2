-- Apply a batch of outbox deltas to a tenant's counters, all or nothing, each event once.
-- KEYS[1]      sorted set of applied outbox ids (member: id, score: ARGV[1])
-- KEYS[2..n]   every other key the batch names, referred to by 1-based index from ARGV[2]
-- ARGV[1]      now, epoch ms
-- ARGV[2]      JSON (flat arrays: a batch holds tens of thousands of groups and ops):
--                {"locks": [i, ...],              rebuild markers of every group touched
--                 "guards": [[i, "value"], ...],  keys that must still hold these values
--                 "events": [["<outbox id>", group, ...], ...]}
--              group: [warm i, field | false, snap i, op..., op...] with each op inline:
--                1, i, field, n             HINCRBY
--                3, i, field, n             hash field kept at its maximum (lastUpdated)
--                4, zset i, negatives i, member, score, +1|-1   zmove
--   A group is applied only when warm (key i exists, or hash i has field f) and the event is not
--   in its snapshot set (an id found there is removed: that rebuild already counted it). The
--   snapshot set is asked once per event and group, so should an event list a group several
--   times, a counted event is skipped for every entry of it (encoder.py lists each once).
--   zmove keeps a member in the sorted set while its running count is 1; a removal that arrives
--   before its addition is remembered in the negatives hash, so moves commute like increments.
--   A timed cell's warm field z:<bucket> holds its cutoff: a move of a member scored below it
--   changes the floor f:<bucket> (trim.lua folded such members there) instead of the set. A
--   pending removal is settled first whatever the score: trimming may have raised the cutoff
--   past it between a member's removal and its addition.
-- Returns {0, applied, duplicates} on success; {1, i} when rebuild marker KEYS[i] is set;
--         {2, i} when guard key KEYS[i] changed. Nothing is written unless it returns 0.
local batch = cjson.decode(ARGV[2])

for _, i in ipairs(batch.locks) do
  if redis.call('EXISTS', KEYS[i]) == 1 then return {1, i} end
end
for _, guard in ipairs(batch.guards) do
  if (redis.call('GET', KEYS[guard[1]]) or '') ~= guard[2] then return {2, guard[1]} end
end

-- The group's warm value: its field's (a timed cell's cutoff), or true for a whole key; false when cold.
local function warm(key, field)
  if field then
    return redis.call('HGET', key, field)
  end
  return redis.call('EXISTS', key) == 1
end

-- cell: {counts hash, floor field, cutoff} of the timed cell the move is in.
local function zmove(cell, zset, negatives, member, score, delta)
  if delta > 0 then
    local pending = tonumber(redis.call('HGET', negatives, member) or '0')
    if pending < 0 then
      if redis.call('HINCRBY', negatives, member, 1) == 0 then redis.call('HDEL', negatives, member) end
    elseif score < cell[3] then
      redis.call('HINCRBY', cell[1], cell[2], 1)
    else
      redis.call('ZADD', zset, score, member)
    end
  elseif score < cell[3] then
    redis.call('HINCRBY', cell[1], cell[2], -1)
  elseif redis.call('ZREM', zset, member) == 0 then
    redis.call('HINCRBY', negatives, member, -1)
  end
end

local applied, duplicates = 0, 0
for _, event in ipairs(batch.events) do
  local id = event[1]
  if redis.call('ZSCORE', KEYS[1], id) then
    duplicates = duplicates + 1
  else
    local counted = {}  -- snapshot set index -> whether its rebuild already counted this event
    for g = 2, #event do
      local group = event[g]
      local snap = group[3]
      if counted[snap] == nil then
        counted[snap] = redis.call('SREM', KEYS[snap], id) == 1
      end
      local value = (not counted[snap]) and warm(KEYS[group[1]], group[2])
      if value then
        local i, last = 4, #group
        local cell = nil  -- built on the first zmove: only timed groups have any
        while i <= last do
          local code, key = group[i], KEYS[group[i + 1]]
          if code == 1 then
            redis.call('HINCRBY', key, group[i + 2], group[i + 3])
            i = i + 4
          elseif code == 3 then
            local current = tonumber(redis.call('HGET', key, group[i + 2]) or '0') or 0
            if group[i + 3] > current then redis.call('HSET', key, group[i + 2], group[i + 3]) end
            i = i + 4
          elseif code == 4 then
            if not cell then  -- the warm field is 'z:' .. bucket; its floor is 'f:' .. bucket
              cell = {KEYS[group[1]], 'f' .. string.sub(group[2], 2), tonumber(value)}
            end
            zmove(cell, key, KEYS[group[i + 2]], group[i + 3], group[i + 4], group[i + 5])
            i = i + 6
          else
            return redis.error_reply('unknown op ' .. tostring(code))
          end
        end
      end
    end
    redis.call('ZADD', KEYS[1], ARGV[1], id)
    applied = applied + 1
  end
end
return {0, applied, duplicates}
