-- One round trip for a cached list page: the generation, the page under it, and the page's documents.
-- ARGV: generation key, page key up to the generation, page digest, product key prefix, versions hash key,
-- then, from a caller that already holds the page rendered (else absent): the page's JSON, its documents'
-- versions joined by commas, and its ids. Returns {generation} on a page miss; {generation, page, 1} when
-- the held page is the current page and the versions hash still holds every one of those versions (so a hot
-- page costs a few bytes on the wire, not its documents); else {generation, page, 0, document or false for
-- each id}.
local generation = redis.call('GET', ARGV[1]) or '0'
local page = redis.call('GET', ARGV[2] .. generation .. ':' .. ARGV[3])
if not page then
    return {generation}
end
if #ARGV > 7 and page == ARGV[6] then
    local versions = redis.call('HMGET', ARGV[5], unpack(ARGV, 8))
    local complete = true
    for i = 1, #ARGV - 7 do
        if not versions[i] then
            complete = false
            break
        end
    end
    if complete and table.concat(versions, ',') == ARGV[7] then
        return {generation, page, 1}
    end
end
local ids = cjson.decode(page)['ids']
if #ids == 0 then
    return {generation, page, 0}
end
local keys = {}
for i, id in ipairs(ids) do
    keys[i] = ARGV[4] .. string.format('%d', id)
end
return {generation, page, 0, unpack(redis.call('MGET', unpack(keys)))}
