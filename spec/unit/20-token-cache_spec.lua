-- TokenCache keeps two generations of entries: new ones go into `young`, and when it is full
-- `young` becomes `old` and the previous `old` is dropped. These specs read both tables to check
-- where an entry is.

local helper = require("spec.unit.helper")

local NOW = helper.NOW

local function entry(expires, fields)
  return { ok = true, expires = expires, fields = fields }
end

local function count(tbl)
  local total = 0
  for _ in pairs(tbl) do
    total = total + 1
  end
  return total
end

local function size(cache)
  return count(cache.young) + count(cache.old)
end

describe("TokenCache get and set", function()
  local TokenCache

  before_each(function()
    TokenCache = helper.load_bridge().tokenCache.TokenCache
  end)

  it("misses an unknown key", function()
    local cache = helper.new(TokenCache, 10)

    assert.is_nil(cache:get("alice", NOW))
  end)

  it("returns the entry that was set", function()
    local cache = helper.new(TokenCache, 10)
    local stored = entry(NOW + 60, { proxy = "y" })

    cache:set("alice", stored)

    assert.equal(stored, cache:get("alice", NOW))
  end)

  it("keeps keys apart", function()
    local cache = helper.new(TokenCache, 10)
    local first = entry(NOW + 60)
    local second = entry(NOW + 60)

    cache:set("alice", first)
    cache:set("bob", second)

    assert.equal(first, cache:get("alice", NOW))
    assert.equal(second, cache:get("bob", NOW))
  end)

  it("replaces an entry on set", function()
    local cache = helper.new(TokenCache, 10)
    local replacement = { ok = false, expires = NOW + 30, reason = "rejected" }

    cache:set("alice", entry(NOW + 60))
    cache:set("alice", replacement)

    assert.equal(replacement, cache:get("alice", NOW))
    assert.equal(1, size(cache))
  end)

  it("returns an entry before expires", function()
    local cache = helper.new(TokenCache, 10)
    cache:set("alice", entry(NOW + 60))

    assert.is_not_nil(cache:get("alice", NOW + 59))
  end)

  it("misses at exactly expires", function()
    local cache = helper.new(TokenCache, 10)
    cache:set("alice", entry(NOW + 60))

    assert.is_nil(cache:get("alice", NOW + 60))
  end)

  it("drops an entry found expired", function()
    local cache = helper.new(TokenCache, 10)
    cache:set("alice", entry(NOW + 60))

    cache:get("alice", NOW + 61)

    assert.is_nil(cache.young.alice)
    assert.is_nil(cache:get("alice", NOW))
  end)

  it("misses an expired old entry", function()
    local cache = helper.new(TokenCache, 2)
    cache:set("alice", entry(NOW + 60))
    cache:set("bob", entry(NOW + 600))

    local found = cache:get("alice", NOW + 60)

    assert.is_nil(found)
    assert.is_nil(cache.old.alice)
    assert.is_nil(cache.young.alice)
  end)
end)

describe("TokenCache eviction", function()
  local TokenCache

  before_each(function()
    TokenCache = helper.load_bridge().tokenCache.TokenCache
  end)

  -- Sets key1 .. keyN in order, each valid for an hour.
  local function fill(cache, first, last)
    for index = first, last do
      cache:set("key" .. index, entry(NOW + 3600))
    end
  end

  it("drops the oldest generation", function()
    local cache = helper.new(TokenCache, 4)

    fill(cache, 1, 5)

    assert.is_nil(cache:get("key1", NOW))
    assert.is_nil(cache:get("key2", NOW))
    assert.is_not_nil(cache:get("key5", NOW))
    assert.is_not_nil(cache:get("key4", NOW))
    assert.is_not_nil(cache:get("key3", NOW))
  end)

  it("keeps a recently used entry", function()
    local cache = helper.new(TokenCache, 4)
    fill(cache, 1, 3)
    assert.is_not_nil(cache.old.key1)

    cache:get("key1", NOW)
    fill(cache, 4, 4)

    assert.is_not_nil(cache:get("key1", NOW))
    assert.is_nil(cache:get("key2", NOW))
  end)

  it("promotes an old entry used again", function()
    local cache = helper.new(TokenCache, 4)
    fill(cache, 1, 3)

    local found = cache:get("key1", NOW)

    assert.is_not_nil(found)
    assert.equal(found, cache.young.key1)
    assert.is_nil(cache.old.key1)
  end)

  it("moves an old entry on set", function()
    local cache = helper.new(TokenCache, 4)
    fill(cache, 1, 3)
    local replacement = entry(NOW + 60)

    cache:set("key1", replacement)

    assert.equal(replacement, cache.young.key1)
    assert.is_nil(cache.old.key1)
  end)

  it("evicts nothing on replacement", function()
    local cache = helper.new(TokenCache, 4)
    fill(cache, 1, 2)

    for _ = 1, 10 do
      cache:set("key1", entry(NOW + 3600))
    end

    assert.is_not_nil(cache:get("key2", NOW))
    assert.is_not_nil(cache:get("key1", NOW))
  end)

  for _, capacity in ipairs({ 2, 5, 10, 1000 }) do
    it(("bounds %d entries"):format(capacity), function()
      local cache = helper.new(TokenCache, capacity)
      local largest = 0

      for index = 1, capacity * 10 do
        cache:set("key" .. index, entry(NOW + 3600))
        -- Use an earlier key now and then, which moves it between generations.
        cache:get("key" .. math.max(1, index - capacity // 2), NOW)
        largest = math.max(largest, size(cache))
      end

      assert.is_true(largest <= capacity, ("held %d entries"):format(largest))
    end)
  end

  it("keeps the latest half of capacity", function()
    local cache = helper.new(TokenCache, 100)

    fill(cache, 1, 1000)

    for index = 951, 1000 do
      assert.is_not_nil(cache:get("key" .. index, NOW), "key" .. index)
    end
  end)

  it("keeps two entries at capacity 2", function()
    local cache = helper.new(TokenCache, 2)

    fill(cache, 1, 2)

    assert.is_not_nil(cache:get("key1", NOW))
    assert.is_not_nil(cache:get("key2", NOW))
  end)
end)
