-- Drop one idle MP and all its cells at once: a read sees every cell or none (cold, recomputed).
-- KEYS[1]      the MP registry hash
-- KEYS[2]      the registry version (bumped: an apply computed with the MP is refused)
-- KEYS[3]      the MPs' last-read hash
-- KEYS[4]      the MP's parts hash (see begin.lua)
-- KEYS[5]      the MP reach hash (its recorded reach is removed, see trim.lua)
-- KEYS[6 .. 5+L]        its cells' rebuild markers
-- KEYS[6+L .. 5+L+D]    its data keys (counts hash, parts hash, cells' sorted sets, negatives,
--                       snapshot sets: keys.mp_data_keys), deleted
-- KEYS[6+L+D .. n]      origin sets naming it (the id is removed from each)
-- ARGV[1]      the MP id
-- ARGV[2]      cutoff, epoch ms: dropped only if last read before it
-- ARGV[3]      how many fields the parts hash had when the keys were listed
-- ARGV[4]      L
-- ARGV[5]      D
-- Returns 0 dropped; 1 not idle (read since, or never recorded); 2 a cell is being rebuilt;
--         3 not registered; 4 the parts hash grew since the keys were listed (list them again).
local id = ARGV[1]
if redis.call('HEXISTS', KEYS[1], id) == 0 then return 3 end
local read = redis.call('HGET', KEYS[3], id)
if not read or tonumber(read) >= tonumber(ARGV[2]) then return 1 end
if redis.call('HLEN', KEYS[4]) ~= tonumber(ARGV[3]) then return 4 end
local nl, nd = tonumber(ARGV[4]), tonumber(ARGV[5])
for i = 6, 5 + nl do
  if redis.call('EXISTS', KEYS[i]) == 1 then return 2 end
end
redis.call('HDEL', KEYS[1], id)
redis.call('HDEL', KEYS[3], id)
redis.call('HDEL', KEYS[5], id)
redis.call('INCR', KEYS[2])
for i = 6 + nl, 5 + nl + nd do redis.call('DEL', KEYS[i]) end
for i = 6 + nl + nd, #KEYS do redis.call('SREM', KEYS[i], id) end
return 0
