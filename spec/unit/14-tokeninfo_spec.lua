-- tokeninfo_url is asked first. The introspection endpoint is asked too when tokeninfo returned no
-- username_attribute claim, or always with force_introspection; its claims override tokeninfo's.

local cjson = require("cjson")
local helper = require("spec.unit.helper")

-- Every log line that a test records must be free of the token and the client secrets.
after_each(helper.assert_logs_clean)

local NOW = helper.NOW
local USER = helper.USER

local TOKENINFO_URL = "https://idp.example.test/tokeninfo?access_token="
local INTROSPECTION_URL = "https://idp.example.test/introspect"
local USERINFO_URL = helper.USERINFO_URL

local POST = {
  "tokeninfo_url = " .. TOKENINFO_URL,
  "introspection_url = " .. INTROSPECTION_URL,
  "introspection_mode = post",
  "client_id = roundcube",
  "client_secret = " .. helper.CLIENT_SECRET,
}

local function with(lines, extra)
  local all = {}
  for _, line in ipairs(lines) do
    all[#all + 1] = line
  end
  for _, line in ipairs(extra or {}) do
    all[#all + 1] = line
  end
  return all
end

-- Returns a transport response for a claim table, a JSON text or a response table.
local function response_of(value)
  if type(value) == "string" then
    return { ok = true, status = 200, body = value }
  end
  if value.ok ~= nil then
    return value
  end
  return helper.json_response(value)
end

describe("tokeninfo flow", function()
  local bridge
  local account_path
  local logger
  local transport

  -- Runs one login: tokeninfo returns `tokeninfo`, the introspection and userinfo endpoints return
  -- `second` (claim tables, JSON text or response tables).
  local function login(lines, tokeninfo, second)
    local settings = bridge.config.parseSettings(helper.config_text(account_path, lines), "test.conf")
    transport = helper.transport(helper.routes({
      [TOKENINFO_URL] = response_of(tokeninfo),
      [INTROSPECTION_URL] = response_of(second or { active = true, email = USER }),
      [USERINFO_URL] = response_of(second or { email = USER }),
    }))
    local context = helper.context(bridge, settings, account_path, transport)
    return bridge.passdb.verifyLogin(context, USER, helper.TOKEN, logger)
  end

  local function urls()
    local found = {}
    for index, request in ipairs(transport.calls) do
      found[index] = request.url.text
    end
    return found
  end

  before_each(function()
    bridge = helper.load_bridge()
    account_path = helper.accounts_file({ USER, "bob@example.test" })
    logger = helper.logger()
  end)

  after_each(function()
    helper.assert_no_secrets(logger.lines)
    helper.remove_temp_files()
  end)

  it("stops after tokeninfo with the claim", function()
    local verdict = login(POST, { email = USER, exp = NOW + 300 })

    helper.assert_verdict(verdict, "OK")
    assert.same({ TOKENINFO_URL .. helper.TOKEN_FORM }, urls())
  end)

  it("introspects without the claim", function()
    local verdict = login(POST, { sub = "109876543210987654321", scope = "openid" })

    helper.assert_verdict(verdict, "OK")
    assert.same({ TOKENINFO_URL .. helper.TOKEN_FORM, INTROSPECTION_URL }, urls())
    assert.equal("POST", transport.calls[2].method)
  end)

  it("introspects with force_introspection", function()
    local verdict = login(with(POST, { "force_introspection = yes" }), { email = USER })

    helper.assert_verdict(verdict, "OK")
    assert.same({ TOKENINFO_URL .. helper.TOKEN_FORM, INTROSPECTION_URL }, urls())
  end)

  it("finds a nested claim in tokeninfo", function()
    local verdict = login(with(POST, { "username_attribute = ext.email" }), { ext = { email = USER } })

    helper.assert_verdict(verdict, "OK")
    assert.equal(1, #transport.calls)
  end)

  it("asks userinfo in mode auth", function()
    local lines = { "tokeninfo_url = " .. TOKENINFO_URL, "introspection_url = " .. USERINFO_URL }

    local verdict = login(lines, { sub = "x" })

    helper.assert_verdict(verdict, "OK")
    assert.same({ TOKENINFO_URL .. helper.TOKEN_FORM, USERINFO_URL }, urls())
    assert.equal("Bearer " .. helper.TOKEN, transport.calls[2].headers.authorization)
  end)

  -- JSON null is no claim, at the top level and inside an object alike.
  local nulls = {
    { name = "null claim", attribute = "email", tokeninfo = '{"sub":"x","email":null}' },
    { name = "nested null claim", attribute = "ext.email", tokeninfo = '{"sub":"x","ext":{"email":null}}' },
  }
  for _, case in ipairs(nulls) do
    it(("introspects after %s"):format(case.name), function()
      local lines = with(POST, { "username_attribute = " .. case.attribute })

      local verdict = login(lines, case.tokeninfo, { active = true, email = USER, ext = { email = USER } })

      helper.assert_verdict(verdict, "OK")
      assert.equal(2, #transport.calls)
    end)
  end

  it("fails without claim or endpoint", function()
    local verdict = login({ "tokeninfo_url = " .. TOKENINFO_URL }, { sub = "x" })

    helper.assert_verdict(verdict, "INTERNAL_FAILURE", "claim email is missing (claims present: sub)")
    assert.equal(1, #transport.calls)
  end)

  -- Each case: tokeninfo response, introspection response, extra settings, result, reason.
  local merges = {
    { name = "introspection overriding email", tokeninfo = { email = "bob@example.test" }, second = { active = true, email = USER }, force = true, result = "OK" },
    { name = "introspection naming bob", tokeninfo = { email = USER }, second = { active = true, email = "bob@example.test" }, force = true, result = "PASSWORD_MISMATCH", reason = "Token belongs to bob@example.test" },
    { name = "introspection nulling email", tokeninfo = { email = USER }, second = '{"active":true,"email":null}', force = true, result = "INTERNAL_FAILURE", reason = "claim email is missing" },
    { name = "scope from tokeninfo", tokeninfo = { scope = "mail" }, second = { active = true, email = USER }, lines = { "scope = mail" }, result = "OK" },
    { name = "aud from introspection", tokeninfo = { sub = "x" }, second = { active = true, email = USER, aud = "roundcube" }, lines = { "audience = roundcube" }, result = "OK" },
    { name = "exp renewed by introspection", tokeninfo = { email = USER, exp = NOW - 3600 }, second = { active = true, exp = NOW + 300 }, force = true, result = "OK" },
    { name = "exp expired by introspection", tokeninfo = { email = USER, exp = NOW + 300 }, second = { active = true, exp = NOW - 3600 }, force = true, result = "PASSWORD_MISMATCH", reason = "Token has expired" },
    { name = "email_verified from tokeninfo", tokeninfo = { sub = "x", email_verified = true }, second = { active = true, email = USER }, lines = { "require_email_verified = yes" }, result = "OK" },
    { name = "email_verified overridden", tokeninfo = { email = USER, email_verified = true }, second = { active = true, email_verified = false }, force = true, lines = { "require_email_verified = yes" }, result = "PASSWORD_MISMATCH", reason = "email_verified is not true" },
  }
  for _, case in ipairs(merges) do
    it(("merges %s"):format(case.name), function()
      local lines = with(POST, case.lines)
      if case.force then
        lines[#lines + 1] = "force_introspection = yes"
      end

      local verdict = login(lines, case.tokeninfo, case.second)

      helper.assert_verdict(verdict, case.result, case.reason)
      assert.equal(2, #transport.calls)
    end)
  end

  -- Each case: tokeninfo response, whether introspection is requested, result, reason.
  local failures = {
    { name = "tokeninfo 400", tokeninfo = { ok = true, status = 400, body = '{"error":"invalid_token"}' }, asked = false, result = "PASSWORD_MISMATCH", reason = "HTTP 400" },
    { name = "tokeninfo 401", tokeninfo = { ok = true, status = 401, body = "" }, asked = false, result = "PASSWORD_MISMATCH", reason = "HTTP 401" },
    { name = "tokeninfo 500", tokeninfo = { ok = true, status = 500, body = "" }, asked = false, result = "INTERNAL_FAILURE", reason = "Tokeninfo request failed: HTTP 500" },
    { name = "tokeninfo timeout", tokeninfo = { ok = false, error = "timeout" }, asked = false, result = "INTERNAL_FAILURE", reason = "Tokeninfo request failed: timeout" },
    { name = "tokeninfo inactive", tokeninfo = { active = false, email = USER }, asked = false, result = "PASSWORD_MISMATCH", reason = "Token is not active" },
    { name = "introspection 401", tokeninfo = { sub = "x" }, second = { ok = true, status = 401, body = "" }, asked = true, result = "INTERNAL_FAILURE", reason = "Check client_id and client_secret" },
    { name = "introspection inactive", tokeninfo = { sub = "x" }, second = { active = false }, asked = true, result = "PASSWORD_MISMATCH", reason = "Token is not active" },
    { name = "introspection without active", tokeninfo = { sub = "x" }, second = { email = USER }, asked = true, result = "INTERNAL_FAILURE", reason = "no active member" },
    { name = "forced introspection inactive", tokeninfo = { email = USER }, second = { active = false }, force = true, asked = true, result = "PASSWORD_MISMATCH", reason = "Token is not active" },
  }
  for _, case in ipairs(failures) do
    it(("returns %s for %s"):format(case.result, case.name), function()
      local lines = with(POST)
      if case.force then
        lines[#lines + 1] = "force_introspection = yes"
      end

      local verdict = login(lines, case.tokeninfo, case.second)

      helper.assert_verdict(verdict, case.result, case.reason)
      assert.equal(case.asked and 2 or 1, #transport.calls)
      helper.assert_no_secrets(logger.lines, verdict.reason)
    end)
  end

  it("reads Google tokeninfo alone", function()
    local lines = { "tokeninfo_url = " .. TOKENINFO_URL, "audience = 123-abc.apps.example.test" }

    local verdict = login(lines, helper.fixture_text("google.tokeninfo-v3"))

    helper.assert_verdict(verdict, "OK")
    assert.equal(1, #transport.calls)
  end)

  it("completes oidc-provider with userinfo", function()
    local lines = {
      "tokeninfo_url = " .. TOKENINFO_URL,
      "introspection_url = " .. USERINFO_URL,
      "force_introspection = yes",
      "audience = https://mail.example.test",
    }
    local introspection = cjson.decode(helper.fixture_text("oidc-provider.introspection"))
    introspection.active = nil

    local verdict = login(lines, introspection, { sub = "alice", email = USER })

    helper.assert_verdict(verdict, "OK")
    assert.equal(2, #transport.calls)
  end)
end)

describe("tokeninfo with discovery", function()
  local bridge
  local account_path
  local transport

  local ISSUER = "https://idp.example.test"
  local WELL_KNOWN = ISSUER .. "/.well-known/openid-configuration"
  local DISCOVERED_USERINFO = ISSUER .. "/oidc/userinfo"

  before_each(function()
    bridge = helper.load_bridge()
    account_path = helper.accounts_file({ USER })
  end)

  after_each(function()
    helper.remove_temp_files()
  end)

  local function login(lines, tokeninfo)
    local settings = bridge.config.parseSettings(helper.config_text(account_path, lines), "test.conf")
    transport = helper.transport(helper.routes({
      [TOKENINFO_URL] = helper.json_response(tokeninfo),
      [WELL_KNOWN] = helper.json_response({ issuer = ISSUER, userinfo_endpoint = DISCOVERED_USERINFO }),
      [DISCOVERED_USERINFO] = helper.json_response({ email = USER }),
    }))
    local discovery = helper.new(bridge.discovery.Discovery, settings, settings.openid_configuration_url)
    local context = helper.context(bridge, settings, account_path, transport, { discovery = discovery })
    return bridge.passdb.verifyLogin(context, USER, helper.TOKEN, helper.logger())
  end

  it("discovers the second endpoint", function()
    local lines = { "tokeninfo_url = " .. TOKENINFO_URL, "openid_configuration_url = " .. ISSUER }

    local verdict = login(lines, { sub = "x" })

    helper.assert_verdict(verdict, "OK")
    assert.equal(3, #transport.calls)
    assert.equal(WELL_KNOWN, transport.calls[2].url.text)
    assert.equal(DISCOVERED_USERINFO, transport.calls[3].url.text)
  end)

  it("skips discovery with the claim", function()
    local lines = { "tokeninfo_url = " .. TOKENINFO_URL, "openid_configuration_url = " .. ISSUER }

    local verdict = login(lines, { email = USER })

    helper.assert_verdict(verdict, "OK")
    assert.equal(1, #transport.calls)
  end)
end)
