-- Read many counts atomically, each a signed sum over the same buckets of one MP, so one answer
-- sees one state and the reply is one integer per count (not one per cell).
-- KEYS        [1] the tenant's watermark key (keys.watermark_key), then the MPs' counts hashes
--             and their timed cells' sorted sets (see the entries)
-- ARGV        flat (no JSON to decode on every read), B = number of buckets, E = of entries:
--   [1]                     B
--   [2 .. B+1]              the bucket names (a plain MP's fields)
--   [B+2 .. 2B+1]           'z:' .. bucket (a timed MP's warm markers)
--   [2B+2 .. 3B+1]          the sign of each bucket, 1 or -1
--   [3B+2]                  E
--   then E pairs            hash, zset: `hash` is the KEYS index of the MP's counts hash; `zset`
--                           is 0 for a plain MP, else the KEYS index of its first bucket's sorted
--                           set (the others follow in bucket order)
--   then a pair per timed entry, in entry order: its ZCOUNT min and max
-- Entries that share a counts hash (one timed MP, several windows) read it with one HMGET.
-- Returns {0, watermark, count1, count2, ...} when every cell is warm (watermark: the tenant's
-- applied watermark, read first, or false when none is stored), else {1, p1, p2, ...}: the
-- 0-based positions of the cold cells (entry * B + bucket).
local nb = tonumber(ARGV[1])
local buckets, markers, signs = {}, {}, {}
for i = 1, nb do
  buckets[i] = ARGV[1 + i]
  markers[i] = ARGV[1 + nb + i]
  signs[i] = tonumber(ARGV[1 + 2 * nb + i])
end
local at = 2 + 3 * nb
local ne = tonumber(ARGV[at])
local window = at + 2 * ne + 1
local call = redis.call
local read = {}  -- KEYS index of a counts hash -> its HMGET reply
local sums, cold = {0, call('GET', KEYS[1])}, {1}
for n = 1, ne do
  local hash, first = tonumber(ARGV[at + 2 * n - 1]), tonumber(ARGV[at + 2 * n])
  local values = read[hash]
  if not values then
    values = call('HMGET', KEYS[hash], unpack(first == 0 and buckets or markers))
    read[hash] = values
  end
  local total = 0
  if first == 0 then
    for i = 1, nb do
      local value = values[i]
      if value then
        total = total + signs[i] * tonumber(value)
      else
        cold[#cold + 1] = (n - 1) * nb + i - 1
      end
    end
  else
    local lo, hi = ARGV[window], ARGV[window + 1]
    window = window + 2
    for i = 1, nb do
      if values[i] then
        total = total + signs[i] * call('ZCOUNT', KEYS[first + i - 1], lo, hi)
      else
        cold[#cold + 1] = (n - 1) * nb + i - 1
      end
    end
  end
  sums[n + 2] = total
end
if #cold > 1 then return cold end
return sums
