-- Read many counts atomically, each a signed sum over some buckets of one MP, so one answer sees
-- one state and the reply is one integer per count (not one per cell).
-- KEYS        [1] the tenant's watermark key (keys.watermark_key), then the MPs' counts hashes
--             and their timed cells' sorted sets (see the entries); the last, the MPs' last-read
--             hash
-- ARGV        flat (no JSON to decode on every read); G = number of bucket lists, E = of entries:
--   [1]                     G
--   then G lists, each:     B, then B bucket names (a plain MP's fields), B 'z:' .. bucket (a
--                           timed MP's cutoffs, its warm markers), B 'f:' .. bucket (its
--                           floors), B signs (1 or -1)
--   then                    E
--   then E triples          hash, zset, list: `hash` is the KEYS index of the MP's counts hash;
--                           `zset` is 0 for a plain MP, else the KEYS index of its first bucket's
--                           sorted set (the others follow in its list's order); `list` is the
--                           1-based bucket list the entry sums
--   then a pair per timed entry, in entry order: its window [lo, hi) in ms, lo maybe '-inf'
--   then, only when the caller records this read: the read stamp (cells.read_stamp) and every
--                           MP id; when all is warm each MP's last read becomes the stamp
--                           (written only if it changed: once a minute per MP, however many
--                           plans read it)
-- Entries that share a counts hash and a bucket list (one timed MP, several windows) read it
-- with one HMGET.
-- A trimmed cell answers a window from -inf as floor + members below hi when hi >= its cutoff,
-- any other window when lo >= its cutoff; a window reaching lower finds the cell cold.
-- Returns {0, watermark, count1, count2, ...} when every cell is warm (watermark: the tenant's
-- applied watermark, read first, or false when none is stored), else {1, p1, p2, ...}: the
-- 0-based positions of the cold cells, entry after entry, each its list's buckets in order.
local call = redis.call
local ng = tonumber(ARGV[1])
local lists = {}  -- each: {n, buckets, markers (cutoffs, then floors), signs}
local at = 2
for g = 1, ng do
  local nb = tonumber(ARGV[at])
  local buckets, markers, signs = {}, {}, {}
  for i = 1, nb do
    buckets[i] = ARGV[at + i]
    markers[i] = ARGV[at + nb + i]
    markers[nb + i] = ARGV[at + 2 * nb + i]
    signs[i] = tonumber(ARGV[at + 3 * nb + i])
  end
  lists[g] = {nb, buckets, markers, signs}
  at = at + 4 * nb + 1
end
local ne = tonumber(ARGV[at])
local window = at + 3 * ne + 1
local read = {}  -- (list - 1) * #KEYS + KEYS index of a counts hash -> its HMGET reply
local nkeys = #KEYS
local sums, cold = {0, call('GET', KEYS[1])}, {1}
local position = 0  -- cells before this entry's
for n = 1, ne do
  local base = at + 3 * n - 2
  local hash, first, g = tonumber(ARGV[base]), tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2])
  local list = lists[g]
  local nb, signs = list[1], list[4]
  local slot = (g - 1) * nkeys + hash
  local values = read[slot]
  if not values then
    values = call('HMGET', KEYS[hash], unpack(first == 0 and list[2] or list[3]))
    read[slot] = values
  end
  local total = 0
  if first == 0 then
    for i = 1, nb do
      local value = values[i]
      if value then
        total = total + signs[i] * tonumber(value)
      else
        cold[#cold + 1] = position + i - 1
      end
    end
  else
    local lo, hi = ARGV[window], tonumber(ARGV[window + 1])
    window = window + 2
    local from = lo ~= '-inf' and tonumber(lo)
    local below = '(' .. ARGV[window - 1]
    for i = 1, nb do
      local cutoff = values[i] and tonumber(values[i])
      if cutoff and from and from >= cutoff then
        total = total + signs[i] * call('ZCOUNT', KEYS[first + i - 1], lo, below)
      elseif cutoff and not from and hi >= cutoff then
        total = total + signs[i] * (call('ZCOUNT', KEYS[first + i - 1], lo, below)
                                    + tonumber(values[nb + i] or '0'))
      else
        cold[#cold + 1] = position + i - 1
      end
    end
  end
  position = position + nb
  sums[n + 2] = total
end
if #cold > 1 then return cold end
local stamp = ARGV[window]
if stamp then
  local reads = KEYS[#KEYS]
  for k = window + 1, #ARGV do
    if call('HGET', reads, ARGV[k]) ~= stamp then call('HSET', reads, ARGV[k], stamp) end
  end
end
return sums
