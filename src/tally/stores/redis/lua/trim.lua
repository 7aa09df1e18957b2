-- Trim one warm timed cell: fold its members scored below the new cutoff into its floor, in one
-- atomic step, so a read or apply sees the cell either whole before or trimmed after.
-- KEYS[1]  the cell's rebuild marker      KEYS[2]  its MP's counts hash
-- KEYS[3]  the cell's sorted set          KEYS[4]  the tenant's MP reach hash
-- ARGV[1]  MP id   ARGV[2]  cutoff field (z:<bucket>)   ARGV[3]  floor field (f:<bucket>)
-- ARGV[4]  now, epoch ms   ARGV[5]  margin, ms
-- The cutoff is now - reach - margin with the reach read here, so a reach raised by a rebuild
-- that began meanwhile is honoured; it only ever rises (a lower one leaves the cell alone).
-- Returns the number of members folded; -1 while the cell is being rebuilt, -2 when it is cold
-- or its MP has no recorded reach.
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local current = redis.call('HGET', KEYS[2], ARGV[2])
local reach = redis.call('HGET', KEYS[4], ARGV[1])
if not current or not reach then return -2 end
local cutoff = tonumber(ARGV[4]) - tonumber(reach) - tonumber(ARGV[5])
if cutoff <= tonumber(current) then return 0 end
local below = '(' .. string.format('%d', cutoff)
local folded = redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', below)
if folded > 0 then redis.call('HINCRBY', KEYS[2], ARGV[3], folded) end
redis.call('HSET', KEYS[2], ARGV[2], string.format('%d', cutoff))
return folded
