-- Read many counts atomically, each a signed sum over the same buckets of one MP, so one answer
-- sees one state and the reply is one integer per count (not one per cell).
-- KEYS        the MPs' counts hashes and their timed cells' sorted sets (see ARGV[1])
-- ARGV[1]     JSON {"b": [bucket, ...], "s": [sign, ...], "e": [[hash, zset], ...]}: one entry
--             per count; `hash` is the KEYS index of the MP's counts hash; `zset` is 0 for a
--             plain MP, else the KEYS index of its first bucket's sorted set (the others follow
--             in bucket order)
-- ARGV[2k], ARGV[2k+1]  ZCOUNT min and max of the k-th timed entry (k = 1, 2, ...)
-- Returns {0, count1, count2, ...} when every cell is warm, else {1, p1, p2, ...}: the 0-based
-- positions of the cold cells (entry * #buckets + bucket).
local spec = cjson.decode(ARGV[1])
local buckets, signs = spec.b, spec.s
local nb = #buckets
local markers = {}
for i = 1, nb do markers[i] = 'z:' .. buckets[i] end
local sums, cold = {0}, {1}
local timed = 0
for n, entry in ipairs(spec.e) do
  local first = entry[2]
  local total = 0
  local values
  if first == 0 then
    values = redis.call('HMGET', KEYS[entry[1]], unpack(buckets))
  else
    values = redis.call('HMGET', KEYS[entry[1]], unpack(markers))
    timed = timed + 1
  end
  local lo, hi = ARGV[2 * timed], ARGV[2 * timed + 1]
  for i = 1, nb do
    if not values[i] then
      cold[#cold + 1] = (n - 1) * nb + i - 1
    elseif first == 0 then
      total = total + signs[i] * tonumber(values[i])
    else
      total = total + signs[i] * redis.call('ZCOUNT', KEYS[first + i - 1], lo, hi)
    end
  end
  sums[n + 1] = total
end
if #cold > 1 then return cold end
return sums
