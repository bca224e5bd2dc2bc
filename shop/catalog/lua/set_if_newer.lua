-- KEYS[1] the versions hash, KEYS[2..] product keys; ARGV[1] ttl seconds, then for each product key in turn: its
-- version, its document ("" for a tombstone) and its product id. Returns how many were stored. Each key keeps the
-- newer of what it holds and what is offered. The versions hash mirrors, per product, the version of the document
-- stored last (no field after a tombstone), so READ_PAGE can check a page's documents without reading them.
local ttl = tonumber(ARGV[1])
local stored = 0
for i = 2, #KEYS do
    local at = 2 + (i - 2) * 3
    local version = tonumber(ARGV[at])
    local document = ARGV[at + 1]
    local current = redis.call('GET', KEYS[i])
    local separator = current and string.find(current, '|', 1, true)
    local older = true
    if separator then
        local held = tonumber(string.sub(current, 1, separator - 1))
        local held_is_tombstone = separator == string.len(current)
        older = held < version or (held == version and held_is_tombstone and document ~= '')
    end
    if older then
        redis.call('SET', KEYS[i], ARGV[at] .. '|' .. document, 'EX', ttl)
        if document == '' then
            redis.call('HDEL', KEYS[1], ARGV[at + 2])
        else
            redis.call('HSET', KEYS[1], ARGV[at + 2], ARGV[at])
        end
        stored = stored + 1
    end
end
if stored > 0 then
    redis.call('EXPIRE', KEYS[1], ttl)
end
return stored
