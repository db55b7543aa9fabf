-- tokenDigest hashes a token in two 64-bit lanes, each under one half of the worker's seed.
-- Bytes 1-8 of a digest are the first lane and bytes 9-16 the second.

local helper = require("spec.unit.helper")

local SEED = { 0x0123456789abcdef, -0x0fedcba987654321 }
local OTHER_SEED = { 0x1123456789abcdef, -0x1fedcba987654321 }

local function first_lane(digest)
  return digest:sub(1, 8)
end

local function second_lane(digest)
  return digest:sub(9, 16)
end

local function popcount(value)
  local bits = 0
  while value ~= 0 do
    value = value & (value - 1)
    bits = bits + 1
  end
  return bits
end

describe("tokenDigest", function()
  local digest

  before_each(function()
    digest = helper.load_bridge().tokenDigest.tokenDigest
  end)

  it("returns 16 bytes", function()
    assert.equal(16, #digest(helper.TOKEN, SEED))
  end)

  it("returns 16 bytes for an empty token", function()
    assert.equal(16, #digest("", SEED))
  end)

  it("is deterministic for a seed", function()
    assert.equal(digest(helper.TOKEN, SEED), digest(helper.TOKEN, SEED))
  end)

  it("is the same in a fresh bundle", function()
    local fresh = helper.load_bridge().tokenDigest.tokenDigest

    assert.equal(digest(helper.TOKEN, SEED), fresh(helper.TOKEN, SEED))
  end)

  it("differs in both lanes between seeds", function()
    local first = digest(helper.TOKEN, SEED)
    local second = digest(helper.TOKEN, OTHER_SEED)

    assert.is_not.equal(first_lane(first), first_lane(second))
    assert.is_not.equal(second_lane(first), second_lane(second))
  end)

  it("differs between the two lanes", function()
    local result = digest(helper.TOKEN, { 42, 42 + 1 })

    assert.is_not.equal(first_lane(result), second_lane(result))
  end)

  it("does not contain the token", function()
    local result = digest("abcdefgh", SEED)

    assert.is_nil(result:find("abcd", 1, true))
  end)

  -- 41 bytes: five whole 8-byte blocks and a tail of one byte.
  local TOKEN = "ya29.a0AfH6SMBx7Zr9Wm4Kp2~Lv8_Ny3/Tb6+Hd5Q"

  it("changes with every byte", function()
    local original = digest(TOKEN, SEED)

    for position = 1, #TOKEN do
      local byte = TOKEN:byte(position)
      local changed = TOKEN:sub(1, position - 1) .. string.char(byte ~ 1) .. TOKEN:sub(position + 1)
      local result = digest(changed, SEED)

      assert.is_not.equal(first_lane(original), first_lane(result), "byte " .. position)
      assert.is_not.equal(second_lane(original), second_lane(result), "byte " .. position)
    end
  end)

  it("changes with the length", function()
    for cut = 1, #TOKEN do
      local shorter = TOKEN:sub(1, #TOKEN - cut)

      assert.is_not.equal(digest(TOKEN, SEED), digest(shorter, SEED), "without the last " .. cut .. " bytes")
    end
  end)

  it("tells a zero byte from the padding", function()
    assert.is_not.equal(digest("abc", SEED), digest("abc\0", SEED))
    assert.is_not.equal(digest("abcdefgh", SEED), digest("abcdefgh\0", SEED))
    assert.is_not.equal(digest("", SEED), digest("\0", SEED))
  end)

  it("tells padding lengths apart", function()
    assert.is_not.equal(digest("dG9rZW4", SEED), digest("dG9rZW4=", SEED))
    assert.is_not.equal(digest("dG9rZW4=", SEED), digest("dG9rZW4==", SEED))
  end)

  it("has no 64-bit collisions in 100k tokens", function()
    local seen_first = {}
    local seen_second = {}
    local collisions_first = 0
    local collisions_second = 0

    for index = 1, 100000 do
      -- Similar tokens: one prefix and a counter, as a provider's serial numbers would be.
      local result = digest(("%s%06d"):format(TOKEN, index), SEED)
      local first, second = first_lane(result), second_lane(result)
      if seen_first[first] then
        collisions_first = collisions_first + 1
      end
      if seen_second[second] then
        collisions_second = collisions_second + 1
      end
      seen_first[first] = true
      seen_second[second] = true
    end

    assert.equal(0, collisions_first)
    assert.equal(0, collisions_second)
  end)

  it("flips about half the bits", function()
    local total = 0
    local samples = 2000
    for index = 1, samples do
      local token = ("%s%05d"):format(TOKEN, index)
      local flipped = token:sub(1, -2) .. string.char(token:byte(-1) ~ 1)
      local a = string.unpack("<i8", digest(token, SEED))
      local b = string.unpack("<i8", digest(flipped, SEED))
      total = total + popcount(a ~ b)
    end

    local average = total / samples
    assert.is_true(average > 30, ("%.2f bits changed on average"):format(average))
    assert.is_true(average < 34, ("%.2f bits changed on average"):format(average))
  end)
end)

describe("randomSeed", function()
  local bundle

  before_each(function()
    bundle = helper.load_bridge()
  end)

  it("returns two integers", function()
    local seed = bundle.tokenDigest.randomSeed()

    assert.equal("integer", math.type(seed[1]))
    assert.equal("integer", math.type(seed[2]))
  end)

  it("differs between calls", function()
    local first = bundle.tokenDigest.randomSeed()
    local second = bundle.tokenDigest.randomSeed()

    assert.is_not.equal(first[1], second[1])
    assert.is_not.equal(first[2], second[2])
  end)

  it("gives usable seeds without urandom", function()
    local real_open = io.open
    io.open = function(path, ...)
      if path == "/dev/urandom" then
        return nil, "/dev/urandom: No such file or directory"
      end
      return real_open(path, ...)
    end

    local ok, seed = pcall(bundle.tokenDigest.randomSeed)
    io.open = real_open

    assert.is_true(ok, tostring(seed))
    assert.equal("integer", math.type(seed[1]))
    assert.equal("integer", math.type(seed[2]))
    assert.is_not.equal(seed[1], seed[2])
    assert.equal(16, #bundle.tokenDigest.tokenDigest(helper.TOKEN, seed))
  end)
end)
