local cjson = require("cjson")
local helper = require("spec.unit.helper")

describe("identity.normalizeName", function()
  local identity

  before_each(function()
    identity = helper.load_bridge().identity
  end)

  local cases = {
    { input = "Alice@Example.TEST", expected = "alice@example.test" },
    { input = "alice@example.test", expected = "alice@example.test" },
    { input = "A.B+Tag_1-x@Sub.Example.Test", expected = "a.b+tag_1-x@sub.example.test" },
    { input = "ÄBC@X", expected = "Äbc@x" },
    { input = "JÜRGEN@BÜCHER.EXAMPLE", expected = "jÜrgen@bÜcher.example" },
    { input = "", expected = "" },
  }
  for _, case in ipairs(cases) do
    it(("lowers ASCII only in %q"):format(case.input), function()
      assert.equal(case.expected, identity.normalizeName(case.input))
    end)
  end

  it("keeps the byte length", function()
    local input = "ÄÖÜ@ÉXAMPLE.TEST"

    assert.equal(#input, #identity.normalizeName(input))
  end)
end)

describe("identity.expandUsernameFormat", function()
  local identity

  before_each(function()
    identity = helper.load_bridge().identity
  end)

  local expansions = {
    { format = "%u", value = "Alice@Example.Test", expected = "Alice@Example.Test" },
    { format = "%Lu", value = "Alice@Example.Test", expected = "alice@example.test" },
    { format = "%n", value = "Alice@Example.Test", expected = "Alice" },
    { format = "%Ln", value = "Alice@Example.Test", expected = "alice" },
    { format = "%d", value = "Alice@Example.Test", expected = "Example.Test" },
    { format = "%Ld", value = "Alice@Example.Test", expected = "example.test" },
    { format = "%n@mail.example.test", value = "alice@corp.example.test", expected = "alice@mail.example.test" },
    { format = "%%%u", value = "alice@example.test", expected = "%alice@example.test" },
    { format = "%u%%", value = "alice@example.test", expected = "alice@example.test%" },
    { format = "%n", value = "alice", expected = "alice" },
    { format = "%d", value = "alice", expected = "" },
    { format = "%n", value = "a@b@example.test", expected = "a@b" },
    { format = "%d", value = "a@b@example.test", expected = "example.test" },
    { format = "%u", value = "100%@example.test", expected = "100%@example.test" },
  }
  for _, case in ipairs(expansions) do
    it(("expands %s for %s"):format(case.format, case.value), function()
      local expanded, problem = identity.expandUsernameFormat(case.format, case.value)

      assert.equal(case.expected, expanded)
      assert.is_nil(problem)
    end)
  end

  local errors = {
    { format = "%x", problem = "contains the unsupported variable %x" },
    { format = "%Lx", problem = "contains the unsupported variable %Lx" },
    { format = "%U", problem = "contains the unsupported variable %U" },
    { format = "%L", problem = "contains the unsupported variable %L" },
    { format = "%u%", problem = "contains the unsupported variable %" },
    { format = "mailbox", problem = "contains no %u, %n or %d variable" },
    { format = "%%u", problem = "contains no %u, %n or %d variable" },
    { format = "", problem = "contains no %u, %n or %d variable" },
  }
  for _, case in ipairs(errors) do
    it(("rejects format %q"):format(case.format), function()
      local expanded, problem = identity.expandUsernameFormat(case.format, "alice@example.test")

      assert.is_nil(expanded)
      assert.equal(case.problem, problem)
    end)
  end
end)

describe("identity.readIdentityClaim", function()
  local identity

  before_each(function()
    identity = helper.load_bridge().identity
  end)

  it("accepts a non-empty string", function()
    local claim = identity.readIdentityClaim({ email = "alice@example.test" }, "email")

    assert.is_true(claim.ok)
    assert.equal("alice@example.test", claim.name)
  end)

  local rejections = {
    { name = "missing claim", claims = { mail = "alice@example.test" }, reason = "claim email is missing (claims present: mail)" },
    { name = "missing claim in empty table", claims = {}, reason = "claim email is missing (claims present: (none))" },
    { name = "empty string", claims = { email = "" }, reason = "claim email is empty" },
    { name = "number", claims = { email = 42 }, reason = "claim email is not a string (number)" },
    { name = "boolean", claims = { email = true }, reason = "claim email is not a string (boolean)" },
    { name = "false", claims = { email = false }, reason = "claim email is not a string (boolean)" },
    { name = "array", claims = { email = { "alice@example.test" } }, reason = "claim email is not a string (object or array)" },
    { name = "object", claims = { email = { address = "alice@example.test" } }, reason = "claim email is not a string (object or array)" },
    { name = "cjson.null", claims = { email = cjson.null }, reason = "claim email is not a string (null)" },
  }
  for _, case in ipairs(rejections) do
    it(("rejects %s"):format(case.name), function()
      local claim = identity.readIdentityClaim(case.claims, "email")

      assert.is_false(claim.ok)
      assert.equal(case.reason, claim.reason)
    end)
  end

  it("never shows the value in a reason", function()
    local claim = identity.readIdentityClaim({ email = { "secret-looking@example.test" } }, "email")

    assert.is_not.contains_text(claim.reason, "secret-looking")
  end)

  it("lists present claims without values", function()
    local claim = identity.readIdentityClaim({ upn = "secret-looking@example.test", sub = "x" }, "email")

    assert.contains_text(claim.reason, "claims present: sub, upn")
    assert.is_not.contains_text(claim.reason, "secret-looking")
  end)

  it("lists at most 20 claim names", function()
    local claims = {}
    for index = 1, 25 do
      claims[("c%02d"):format(index)] = "value"
    end

    local claim = identity.readIdentityClaim(claims, "email")

    assert.contains_text(claim.reason, "c20, ...)")
    assert.is_not.contains_text(claim.reason, "c21")
  end)
end)

describe("identity claims in provider fixtures", function()
  local bridge

  before_each(function()
    bridge = helper.load_bridge()
  end)

  -- The identity each userinfo or Microsoft Graph response yields for each attribute. A string
  -- is the expected name, and `false` means that the claim is rejected.
  local expected = {
    ["authelia.userinfo"] = { email = "john.doe@example.test", mail = false },
    ["authentik.userinfo"] = { email = "alice@example.test", mail = false },
    ["dex.userinfo"] = { email = "alice@example.test", mail = false },
    ["entra.graph-me"] = { email = false, mail = "alice@example.test" },
    ["entra.graph-me-no-mail"] = { email = false, mail = false },
    ["entra.userinfo"] = { email = "alice@example.test", mail = false },
    ["google.userinfo"] = { email = "alice@example.test", mail = false },
    ["google.userinfo-v2"] = { email = "alice@example.test", mail = false },
    ["kanidm.userinfo"] = { email = "alice@example.test", mail = false },
    ["keycloak.userinfo"] = { email = "alice@example.test", mail = false },
    ["zitadel.userinfo"] = { email = "alice@example.test", mail = false },
  }

  it("covers every userinfo and graph fixture", function()
    for _, name in ipairs(helper.fixture_names()) do
      if name:find("userinfo", 1, true) or name:find("graph", 1, true) then
        assert.is_not_nil(expected[name], "no expectation for fixture " .. name)
      end
    end
  end)

  local names = {}
  for name in pairs(expected) do
    names[#names + 1] = name
  end
  table.sort(names)

  for _, name in ipairs(names) do
    for _, attribute in ipairs({ "email", "mail" }) do
      local want = expected[name][attribute]

      it(("reads %s from %s"):format(attribute, name), function()
        local decoded = bridge.json.decodeObject(helper.fixture_text(name))
        assert.is_true(decoded.ok)

        local claim = bridge.identity.readIdentityClaim(decoded.object, attribute)

        if want then
          assert.is_true(claim.ok)
          assert.equal(want, claim.name)
        else
          assert.is_false(claim.ok)
          assert.contains_text(claim.reason, "claim " .. attribute)
        end
      end)
    end
  end

  it("finds mail null in graph-me-no-mail", function()
    local raw = cjson.decode(helper.fixture_text("entra.graph-me-no-mail"))

    local claim = bridge.identity.readIdentityClaim(raw, "mail")

    assert.is_false(claim.ok)
    assert.equal("claim mail is not a string (null)", claim.reason)
  end)
end)
