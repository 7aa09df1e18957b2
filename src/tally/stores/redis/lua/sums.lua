-- Read many counts atomically, each a signed sum over the same buckets of one MP, so one answer
-- sees one state and the reply is one integer per count (not one per cell).
-- KEYS        the MPs' counts hashes and their timed cells' sorted sets (see the entries); the
--             last, the MPs' last-read hash
-- ARGV        flat (no JSON to decode on every read), B = number of buckets, E = of entries:
--   [1]                     B
--   [2 .. B+1]              the bucket names (a plain MP's fields)
--   [B+2 .. 3B+1]           'z:' .. bucket (a timed MP's cutoffs, its warm markers), then
--                           'f:' .. bucket (its floors)
--   [3B+2 .. 4B+1]          the sign of each bucket, 1 or -1
--   [4B+2]                  E
--   then E pairs            hash, zset: `hash` is the KEYS index of the MP's counts hash; `zset`
--                           is 0 for a plain MP, else the KEYS index of its first bucket's sorted
--                           set (the others follow in bucket order)
--   then a pair per timed entry, in entry order: its window [lo, hi) in ms, lo maybe '-inf'
--   then, only when the caller records this read: the read stamp (cells.read_stamp) and every
--                           MP id; when all is warm each MP's last read becomes the stamp
--                           (written only if it changed: once a minute per MP, however many
--                           plans read it)
-- Entries that share a counts hash (one timed MP, several windows) read it with one HMGET.
-- A trimmed cell answers a window from -inf as floor + members below hi when hi >= its cutoff,
-- any other window when lo >= its cutoff; a window reaching lower finds the cell cold.
-- Returns {0, count1, count2, ...} when every cell is warm, else {1, p1, p2, ...}: the 0-based
-- positions of the cold cells (entry * B + bucket).
local nb = tonumber(ARGV[1])
local buckets, markers, signs = {}, {}, {}
for i = 1, nb do
  buckets[i] = ARGV[1 + i]
  markers[i] = ARGV[1 + nb + i]
  markers[nb + i] = ARGV[1 + 2 * nb + i]
  signs[i] = tonumber(ARGV[1 + 3 * nb + i])
end
local at = 2 + 4 * nb
local ne = tonumber(ARGV[at])
local window = at + 2 * ne + 1
local call = redis.call
local read = {}  -- KEYS index of a counts hash -> its HMGET reply
local sums, cold = {0}, {1}
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
        cold[#cold + 1] = (n - 1) * nb + i - 1
      end
    end
  end
  sums[n + 1] = total
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
