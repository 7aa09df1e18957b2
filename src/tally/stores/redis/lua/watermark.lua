-- Raise a tenant's applied watermark, never lower it, and tell waiting requests.
-- KEYS[1]  the tenant's watermark key (keys.watermark_key)
-- ARGV[1]  the applied watermark the worker computed (an integer, 0 or more)
-- ARGV[2]  the channel to publish the new value on (keys.watermark_channel)
-- Returns the watermark now stored (ARGV[1] or a higher one set by a later apply).
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local proposed = tonumber(ARGV[1])
if proposed > current then
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('PUBLISH', ARGV[2], ARGV[1])
  return proposed
end
return current
