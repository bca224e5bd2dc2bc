-- KEYS: requests per address, requests per account+address, failures per address, failures per email+address,
-- failures per email. ARGV: for each key its limit then its window in seconds. Returns 0 when the request may
-- go ahead (and counts it everywhere), else the number of the limit that refused it and the seconds left.
local function held(key) return tonumber(redis.call('GET', key) or '0') end
local function refuse(i) return {i, math.max(redis.call('TTL', KEYS[i]), 1)} end
for i = 1, 4 do
    if held(KEYS[i]) >= tonumber(ARGV[2 * i - 1]) then return refuse(i) end
end
if held(KEYS[4]) > 0 and held(KEYS[5]) >= tonumber(ARGV[9]) then return refuse(5) end
for i = 1, 5 do
    if redis.call('INCR', KEYS[i]) == 1 then redis.call('EXPIRE', KEYS[i], ARGV[2 * i]) end
end
return {0, 0}
