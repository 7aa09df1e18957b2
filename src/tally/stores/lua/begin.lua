-- Start rebuilding ticket cells: register new MPs (bumping the registry version, so an apply
-- computed without them is refused) and set each cell's rebuild marker.
-- KEYS[1]      the MP registry hash
-- KEYS[2]      the registry version
-- KEYS[3..n]   the cells' rebuild markers
-- ARGV[1]      marker time to live, ms
-- ARGV[2]      the marker token
-- ARGV[3]      JSON: [["<mp id>", "<spec>"], ...] MPs to register when absent
-- Returns one flag per marker (KEYS[3..n]): 1 set by this call, 0 held by another rebuild.
local added = 0
for _, mp in ipairs(cjson.decode(ARGV[3])) do
  added = added + redis.call('HSETNX', KEYS[1], mp[1], mp[2])
end
if added > 0 then redis.call('INCR', KEYS[2]) end
local flags = {}
for i = 3, #KEYS do
  flags[#flags + 1] = redis.call('SET', KEYS[i], ARGV[2], 'NX', 'PX', ARGV[1]) and 1 or 0
end
return flags
