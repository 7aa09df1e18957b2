-- Run a list of read commands atomically, so every count in one answer sees the same state.
-- KEYS[1..n]  the keys read, referred to by 1-based index from ARGV[1]
-- ARGV[1]     JSON: [["hget", i, field] | ["hexists", i, field] | ["zcount", i, min, max]
--                    | ["get", i] | ["hgetall", i], ...]
-- Returns one reply per command, in order (nil for a missing value).
local allowed = {hget = 'HGET', hexists = 'HEXISTS', zcount = 'ZCOUNT', get = 'GET',
                 hgetall = 'HGETALL'}
local results = {}
for n, command in ipairs(cjson.decode(ARGV[1])) do
  local name = allowed[command[1]]
  if not name then return redis.error_reply('read: unknown command ' .. tostring(command[1])) end
  local args = {}
  for i = 3, #command do args[#args + 1] = command[i] end
  local reply = redis.call(name, KEYS[command[2]], unpack(args))
  if reply == nil then reply = false end
  results[n] = reply
end
return results
