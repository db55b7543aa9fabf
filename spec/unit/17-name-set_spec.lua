-- NameSet keeps the account names of a file in bucket strings of at most 16 names on average,
-- instead of one table entry per name.

local helper = require("spec.unit.helper")

local function numbered_names(first, last)
  local names = {}
  for index = first, last do
    names[#names + 1] = ("user%d@example.test"):format(index)
  end
  return names
end

local function bucket_count(set)
  return set.mask + 1
end

-- Returns the number of names in each non-empty bucket, as a list.
local function bucket_sizes(set)
  local sizes = {}
  for _, bucket in pairs(set.buckets) do
    local _, line_breaks = bucket:gsub("\n", "")
    sizes[#sizes + 1] = line_breaks - 1
  end
  return sizes
end

describe("NameSet membership", function()
  local NameSet

  local function new_set(names)
    return helper.new(NameSet, names)
  end

  before_each(function()
    NameSet = helper.name_set_class(helper.load_bridge())
  end)

  it("finds nothing in an empty set", function()
    local set = new_set({})

    assert.is_false(set:has(helper.USER))
    assert.equal(0, set.size)
  end)

  it("finds the one name", function()
    local set = new_set({ helper.USER })

    assert.is_true(set:has(helper.USER))
    assert.equal(1, set.size)
  end)

  local near_misses = {
    { name = "prefix", value = "alice@example.tes" },
    { name = "suffix", value = "lice@example.test" },
    { name = "longer", value = "alice@example.test2" },
    { name = "leading space", value = " alice@example.test" },
    { name = "other case", value = "Alice@example.test" },
    { name = "substring", value = "example" },
  }
  for _, case in ipairs(near_misses) do
    it(("misses the %s of a name"):format(case.name), function()
      local set = new_set({ helper.USER })

      assert.is_false(set:has(case.value))
    end)
  end

  it("misses names one byte apart", function()
    local set = new_set({ helper.USER })

    for position = 1, #helper.USER do
      local byte = helper.USER:byte(position)
      local changed = helper.USER:sub(1, position - 1) .. string.char((byte + 1) % 256) .. helper.USER:sub(position + 1)
      assert.is_false(set:has(changed), ("found %q"):format(changed))
    end
  end)

  it("tells apart names one byte apart", function()
    local set = new_set({ "user1@example.test", "user2@example.test" })

    assert.is_true(set:has("user1@example.test"))
    assert.is_true(set:has("user2@example.test"))
    assert.is_false(set:has("user3@example.test"))
  end)

  it("finds thousands of names", function()
    local names = numbered_names(1, 5000)
    local set = new_set(names)

    local missed = {}
    for _, name in ipairs(names) do
      if not set:has(name) then
        missed[#missed + 1] = name
      end
    end

    assert.same({}, missed)
    assert.equal(5000, set.size)
  end)

  it("misses names outside thousands", function()
    local set = new_set(numbered_names(1, 5000))

    local found = {}
    for _, name in ipairs(numbered_names(5001, 10000)) do
      if set:has(name) then
        found[#found + 1] = name
      end
    end

    assert.same({}, found)
    assert.is_false(set:has("user0@example.test"))
  end)

  it("counts duplicates once", function()
    local set = new_set({ "a@example.test", "b@example.test", "a@example.test", "a@example.test" })

    assert.equal(2, set.size)
    assert.is_true(set:has("a@example.test"))
  end)
end)

describe("NameSet rejected names", function()
  local NameSet

  before_each(function()
    NameSet = helper.name_set_class(helper.load_bridge())
  end)

  it("rejects the empty name", function()
    local set = helper.new(NameSet, { "" })

    assert.is_false(set:has(""))
  end)

  it("rejects empty name beside others", function()
    local set = helper.new(NameSet, { "a@example.test", "" })

    assert.is_false(set:has(""))
  end)

  -- Each name is in the set itself, so only the rejection keeps it from being found.
  local names = {
    { name = "LF", value = "alice\n@example.test" },
    { name = "CR", value = "alice\r@example.test" },
    { name = "NUL", value = "alice\0@example.test" },
    { name = "trailing CR", value = "alice@example.test\r" },
  }
  for _, case in ipairs(names) do
    it(("rejects a name with %s"):format(case.name), function()
      local set = helper.new(NameSet, { case.value })

      assert.is_false(set:has(case.value))
    end)
  end

  it("never matches across two entries", function()
    local first, second = helper.names_sharing_bucket(64)
    local set = helper.new(NameSet, { first, second })

    local buckets = bucket_sizes(set)

    assert.same({ 2 }, buckets)
    assert.is_true(set:has(first))
    assert.is_true(set:has(second))
    assert.is_false(set:has(first .. "\n" .. second))
  end)
end)

describe("NameSet buckets", function()
  local NameSet

  before_each(function()
    NameSet = helper.name_set_class(helper.load_bridge())
  end)

  -- 16 names per bucket on average, and at least 64 buckets.
  local sizes = {
    { names = 0, buckets = 64 },
    { names = 1, buckets = 64 },
    { names = 1024, buckets = 64 },
    { names = 1025, buckets = 128 },
    { names = 2048, buckets = 128 },
    { names = 2049, buckets = 256 },
    { names = 4097, buckets = 512 },
  }
  for _, case in ipairs(sizes) do
    it(("uses %d buckets for %d names"):format(case.buckets, case.names), function()
      local set = helper.new(NameSet, numbered_names(1, case.names))

      assert.equal(case.buckets, bucket_count(set))
    end)
  end

  it("spreads similar names evenly", function()
    local set = helper.new(NameSet, numbered_names(1, 4096))

    local sizes_found = bucket_sizes(set)
    table.sort(sizes_found)

    assert.equal(256, #sizes_found)
    assert.is_true(sizes_found[#sizes_found] <= 48, "largest bucket holds " .. sizes_found[#sizes_found] .. " names")
  end)
end)
