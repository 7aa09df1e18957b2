-- A user's notification counters and the tenant's applied watermark, read atomically.
-- KEYS[1]  the tenant's watermark key (keys.watermark_key)
-- KEYS[2]  the user's counts hash (keys.notification_counts_key)
-- Returns {watermark or false, the hash as HGETALL's flat list (empty when cold)}.
return {redis.call('GET', KEYS[1]), redis.call('HGETALL', KEYS[2])}
