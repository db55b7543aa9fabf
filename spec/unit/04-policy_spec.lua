local cjson = require("cjson")
local helper = require("spec.unit.helper")

describe("policy.checkActive", function()
  local policy

  before_each(function()
    policy = helper.load_bridge().policy
  end)

  it("passes active true", function()
    assert.is_nil(policy.checkActive({ active = true }, {}))
  end)

  it("passes an absent active claim", function()
    assert.is_nil(policy.checkActive({ email = "alice@example.test" }, {}))
  end)

  local inactive = {
    { name = "false", value = false },
    { name = 'string "true"', value = "true" },
    { name = "number 1", value = 1 },
    { name = "object", value = { value = true } },
  }
  for _, case in ipairs(inactive) do
    it(("rejects active %s"):format(case.name), function()
      local refusal = policy.checkActive({ active = case.value }, {})

      assert.is_not_nil(refusal)
      assert.is_false(refusal.ok)
      assert.equal("PASSWORD_MISMATCH", refusal.result)
      assert.equal("Token is not active", refusal.reason)
    end)
  end

  it("rejects active null", function()
    local refusal = policy.checkActive({}, { active = true })

    assert.is_not_nil(refusal)
    assert.equal("PASSWORD_MISMATCH", refusal.result)
  end)

  it("requires active when asked", function()
    local refusal = policy.checkActive({ sub = "5f3c0a1e9b2d" }, {}, true)

    assert.is_not_nil(refusal)
    assert.equal("INTERNAL_FAILURE", refusal.result)
    assert.contains_text(refusal.reason, "no active member")
  end)

  it("passes required active true", function()
    assert.is_nil(policy.checkActive({ active = true }, {}, true))
  end)

  it("rejects required active null", function()
    local refusal = policy.checkActive({}, { active = true }, true)

    assert.equal("PASSWORD_MISMATCH", refusal.result)
  end)

  it("rejects authentik inactive fixture", function()
    local claims = cjson.decode(helper.fixture_text("authentik.introspection-inactive"))

    local refusal = policy.checkActive(claims, {})

    assert.equal("PASSWORD_MISMATCH", refusal.result)
  end)
end)

describe("policy.checkExpiry", function()
  local policy
  local now = helper.NOW

  before_each(function()
    policy = helper.load_bridge().policy
  end)

  local valid = {
    { name = "absent exp", claims = {} },
    { name = "future number", claims = { exp = now + 300 } },
    { name = "future float", claims = { exp = now + 0.5 } },
    { name = "future numeric string", claims = { exp = tostring(now + 300) } },
  }
  for _, case in ipairs(valid) do
    it(("passes %s"):format(case.name), function()
      assert.is_nil(policy.checkExpiry(case.claims, now))
    end)
  end

  local expired = {
    { name = "past number", claims = { exp = now - 1 } },
    { name = "exp equal to now", claims = { exp = now } },
    { name = "zero", claims = { exp = 0 } },
    { name = "past numeric string", claims = { exp = tostring(now - 60) } },
  }
  for _, case in ipairs(expired) do
    it(("rejects %s as expired"):format(case.name), function()
      local refusal = policy.checkExpiry(case.claims, now)

      assert.is_not_nil(refusal)
      assert.equal("PASSWORD_MISMATCH", refusal.result)
      assert.equal("Token has expired", refusal.reason)
    end)
  end

  local unusable = {
    { name = "non-numeric string", claims = { exp = "tomorrow" }, type = "string" },
    { name = "empty string", claims = { exp = "" }, type = "string" },
    { name = "negative numeric string", claims = { exp = "-5" }, type = "string" },
    { name = "exponent string", claims = { exp = "1e10" }, type = "string" },
    { name = "padded numeric string", claims = { exp = " 1767225900" }, type = "string" },
    { name = "boolean", claims = { exp = true }, type = "boolean" },
    { name = "array", claims = { exp = { now + 300 } }, type = "object or array" },
    { name = "object", claims = { exp = { seconds = now + 300 } }, type = "object or array" },
    { name = "cjson.null", claims = { exp = cjson.null }, type = "null" },
    { name = "NaN", claims = { exp = 0 / 0 }, type = "number" },
  }
  for _, case in ipairs(unusable) do
    it(("rejects %s exp"):format(case.name), function()
      local refusal = policy.checkExpiry(case.claims, now)

      assert.is_not_nil(refusal)
      assert.equal("INTERNAL_FAILURE", refusal.result)
      assert.equal(("Claim exp is not a number (%s)"):format(case.type), refusal.reason)
    end)
  end

  local skews = {
    { name = "exp inside the skew", exp = now - 29, skew = 30, expired = false },
    { name = "exp at the skew", exp = now - 30, skew = 30, expired = true },
    { name = "exp at now without skew", exp = now, skew = 0, expired = true },
    { name = "exp after now without skew", exp = now + 1, skew = 0, expired = false },
    { name = "exp an hour back", exp = now - 3599, skew = 3600, expired = false },
  }
  for _, case in ipairs(skews) do
    it(("applies clock skew to %s"):format(case.name), function()
      local refusal = policy.checkExpiry({ exp = case.exp }, now, case.skew)

      if case.expired then
        assert.is_not_nil(refusal)
        assert.equal("PASSWORD_MISMATCH", refusal.result)
      else
        assert.is_nil(refusal)
      end
    end)
  end

  it("reads Google tokeninfo string exp", function()
    local claims = cjson.decode(helper.fixture_text("google.tokeninfo-v3"))

    assert.equal("string", type(claims.exp))
    assert.is_nil(policy.checkExpiry(claims, now))
  end)

  it("expires Google tokeninfo at its exp", function()
    local claims = cjson.decode(helper.fixture_text("google.tokeninfo-v3"))

    local refusal = policy.checkExpiry(claims, 1767229199)

    assert.equal("PASSWORD_MISMATCH", refusal.result)
  end)
end)
