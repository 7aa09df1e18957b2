-- Start rebuilding ticket cells: register new MPs (bumping the registry version, so an apply
-- computed without them is refused), raise timed MPs' recorded reach, record them as read and set
-- each cell's rebuild marker.
-- KEYS[1]      the MP registry hash
-- KEYS[2]      the registry version
-- KEYS[3]      the MP reach hash (timed MP id -> ms below now its windows reach)
-- KEYS[4]      the MPs' last-read hash (the idle drop's clock)
-- KEYS[5..n]   origin sets, the MPs' parts hashes and the cells' rebuild markers, referred to by
--              index from ARGV[4]
-- ARGV[1]      marker time to live, ms
-- ARGV[2]      the marker token
-- ARGV[3]      the read stamp (epoch ms, cells.read_stamp): each MP's last read
-- ARGV[4]      JSON: {"mps": [["<mp id>", "<spec>", [origin set i, ...], parts i,
--                              ["o:<filter>" | "c:<bucket>", ...], reach | false], ...],
--                     "locks": [i, ...]}
--   Each MP is registered when absent and its id added to the origin sets (filter id -> MPs); its
--   parts hash records the origins and buckets begun, so the idle drop knows every key it owns;
--   a timed MP's recorded reach only rises (trim.lua folds below now - reach - margin).
-- Returns {flags, reaches}: one flag per lock, 1 set by this call, 0 held by another rebuild;
--         one reach per MP as now recorded (0 for a plain MP).
local plan = cjson.decode(ARGV[4])
local added = 0
local reaches = {}
for _, mp in ipairs(plan.mps) do
  added = added + redis.call('HSETNX', KEYS[1], mp[1], mp[2])
  for _, i in ipairs(mp[3]) do redis.call('SADD', KEYS[i], mp[1]) end
  for _, part in ipairs(mp[5]) do redis.call('HSET', KEYS[mp[4]], part, 1) end
  redis.call('HSET', KEYS[4], mp[1], ARGV[3])
  local reach = 0
  if mp[6] then
    reach = tonumber(redis.call('HGET', KEYS[3], mp[1]) or '-1')
    if mp[6] > reach then
      reach = mp[6]
      redis.call('HSET', KEYS[3], mp[1], string.format('%d', reach))
    end
  end
  reaches[#reaches + 1] = reach
end
if added > 0 then redis.call('INCR', KEYS[2]) end
local flags = {}
for _, i in ipairs(plan.locks) do
  flags[#flags + 1] = redis.call('SET', KEYS[i], ARGV[2], 'NX', 'PX', ARGV[1]) and 1 or 0
end
return {flags, reaches}
