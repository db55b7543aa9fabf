-- The request each introspection_mode sends, how each kind of endpoint's HTTP status is read,
-- and the `active` rules, through passdb.verifyLogin with a recording fake transport.

local cjson = require("cjson")
local helper = require("spec.unit.helper")

-- Every log line that a test records must be free of the token and the client secrets.
after_each(helper.assert_logs_clean)

local NOW = helper.NOW
local USER = helper.USER

local USERINFO_URL = helper.USERINFO_URL
local TOKEN_URL = "https://idp.example.test/userinfo?access_token="
local INTROSPECTION_URL = "https://idp.example.test:8443/oauth2/introspect"
local TOKENINFO_URL = "https://idp.example.test/tokeninfo?access_token="

-- Settings lines for each kind of endpoint. "tokeninfo" is tokeninfo_url alone.
local MODES = {
  auth = { "introspection_url = " .. USERINFO_URL },
  get = { "introspection_url = " .. TOKEN_URL, "introspection_mode = get" },
  post = {
    "introspection_url = " .. INTROSPECTION_URL,
    "introspection_mode = post",
    "client_id = roundcube",
    "client_secret = " .. helper.CLIENT_SECRET,
  },
  tokeninfo = { "tokeninfo_url = " .. TOKENINFO_URL },
}

local function join(...)
  local all = {}
  for index = 1, select("#", ...) do
    for _, line in ipairs(select(index, ...)) do
      all[#all + 1] = line
    end
  end
  return all
end

local function good_claims(overrides)
  local claims = { sub = "5f3c0a1e9b2d", email = USER, exp = NOW + 300 }
  for key, value in pairs(overrides or {}) do
    claims[key] = value
  end
  return claims
end

describe("validation requests", function()
  local bridge
  local account_path
  local logger

  -- Runs one login with `lines` and returns the verdict and the single recorded request.
  local function login(lines, response)
    local settings = bridge.config.parseSettings(helper.config_text(account_path, lines), "test.conf")
    local transport = helper.transport(response or helper.json_response(good_claims({ active = true })))
    local verdict = bridge.passdb.verifyLogin(helper.context(bridge, settings, account_path, transport), USER, helper.TOKEN, logger)

    assert.equal(1, #transport.calls)
    return verdict, transport.calls[1]
  end

  before_each(function()
    bridge = helper.load_bridge()
    account_path = helper.accounts_file({ USER })
    logger = helper.logger()
  end)

  after_each(function()
    helper.assert_no_secrets(logger.lines)
    helper.remove_temp_files()
  end)

  describe("mode auth", function()
    it("sends GET to the URL", function()
      local verdict, request = login(MODES.auth)

      helper.assert_verdict(verdict, "OK")
      assert.equal("GET", request.method)
      assert.equal(USERINFO_URL, request.url.text)
    end)

    it("sends only Bearer and Accept", function()
      local _, request = login(MODES.auth)

      assert.same({ authorization = "Bearer " .. helper.TOKEN, accept = "application/json" }, request.headers)
    end)

    it("sends no body", function()
      local _, request = login(MODES.auth)

      assert.is_nil(request.body)
    end)

    it("passes the parsed URL parts", function()
      local _, request = login(MODES.auth)

      assert.equal("https", request.url.scheme)
      assert.equal("idp.example.test", request.url.host)
      assert.equal(443, request.url.port)
    end)
  end)

  describe("mode get", function()
    it("appends the form-encoded token", function()
      local verdict, request = login(MODES.get)

      helper.assert_verdict(verdict, "OK")
      assert.equal("GET", request.method)
      assert.equal(TOKEN_URL .. helper.TOKEN_FORM, request.url.text)
    end)

    it("sends no Authorization header", function()
      local _, request = login(MODES.get)

      assert.same({ accept = "application/json" }, request.headers)
    end)

    it("sends no body", function()
      local _, request = login(MODES.get)

      assert.is_nil(request.body)
    end)

    it("keeps host and port", function()
      local _, request = login({ "introspection_url = http://127.0.0.1:9000/userinfo/", "introspection_mode = get" })

      assert.equal("http://127.0.0.1:9000/userinfo/" .. helper.TOKEN_FORM, request.url.text)
      assert.equal("127.0.0.1", request.url.host)
      assert.equal(9000, request.url.port)
      assert.equal("http", request.url.scheme)
    end)
  end)

  describe("mode post", function()
    it("sends POST to the URL", function()
      local verdict, request = login(MODES.post)

      helper.assert_verdict(verdict, "OK")
      assert.equal("POST", request.method)
      assert.equal(INTROSPECTION_URL, request.url.text)
      assert.equal(8443, request.url.port)
    end)

    it("sends the RFC 7662 form", function()
      local _, request = login(MODES.post)

      assert.equal("token=" .. helper.TOKEN_FORM .. "&token_type_hint=access_token", request.body)
    end)

    it("sends form and JSON headers", function()
      local _, request = login(MODES.post)

      assert.equal("application/x-www-form-urlencoded", request.headers["content-type"])
      assert.equal("application/json", request.headers.accept)
    end)

    it("sends the token only in the body", function()
      local _, request = login(MODES.post)

      assert.is_not.contains_text(request.url.text, helper.TOKEN_FORM)
      for name, value in pairs(request.headers) do
        assert.is_not.contains_text(value, helper.TOKEN, name)
        assert.is_not.contains_text(value, helper.TOKEN_FORM, name)
      end
    end)

    -- Expected values computed with Python's urllib.parse.quote_plus and base64, not with the
    -- bundle's own encoder. The secret has ":", "+", "%", "/" and a space.
    local basics = {
      {
        name = "plain credentials",
        id = "roundcube",
        secret = helper.CLIENT_SECRET,
        header = "Basic cm91bmRjdWJlOnNwZWMtY2xpZW50LXNlY3JldC1WcjRVeDhacQ==",
      },
      {
        name = "special secret",
        id = "roundcube",
        secret = helper.SPECIAL_SECRET,
        header = "Basic cm91bmRjdWJlOlZyNCUzQVUlMkJ4OCUyNTJGJTJGWnErdw==",
      },
      {
        name = "special id and secret",
        id = "mail client:1",
        secret = helper.SPECIAL_SECRET,
        header = "Basic bWFpbCtjbGllbnQlM0ExOlZyNCUzQVUlMkJ4OCUyNTJGJTJGWnErdw==",
      },
    }
    for _, case in ipairs(basics) do
      it(("encodes basic %s"):format(case.name), function()
        local lines = {
          "introspection_url = " .. INTROSPECTION_URL,
          "introspection_mode = post",
          "client_id = " .. case.id,
          "client_secret = " .. case.secret,
        }

        local _, request = login(lines)

        assert.equal(case.header, request.headers.authorization)
        assert.equal("token=" .. helper.TOKEN_FORM .. "&token_type_hint=access_token", request.body)
      end)
    end

    it("encodes basic from URL credentials", function()
      local lines = {
        "introspection_url = https://mail%20client%3A1:Vr4%3AU+x8%252F%2FZq%20w@idp.example.test/introspect",
        "introspection_mode = post",
      }

      local _, request = login(lines)

      assert.equal("Basic bWFpbCtjbGllbnQlM0ExOlZyNCUzQVUlMkJ4OCUyNTJGJTJGWnErdw==", request.headers.authorization)
      assert.equal("https://idp.example.test/introspect", request.url.text)
    end)

    it("puts credentials in the form body", function()
      local lines = join(MODES.post, { "client_auth_method = client_secret_post" })
      lines[4] = "client_secret = " .. helper.SPECIAL_SECRET

      local _, request = login(lines)

      assert.equal(
        "token=" .. helper.TOKEN_FORM .. "&token_type_hint=access_token&client_id=roundcube&client_secret=" .. helper.SPECIAL_SECRET_FORM,
        request.body
      )
    end)

    it("sends no Basic with client_secret_post", function()
      local lines = join(MODES.post, { "client_auth_method = client_secret_post" })

      local _, request = login(lines)

      assert.is_nil(request.headers.authorization)
      assert.equal("application/x-www-form-urlencoded", request.headers["content-type"])
    end)

    it("hides the Basic value in logs", function()
      local lines = join(MODES.post)
      lines[4] = "client_secret = " .. helper.SPECIAL_SECRET

      local _, request = login(lines)
      local encoded = request.headers.authorization:sub(#"Basic " + 1)

      for _, line in ipairs(logger.lines) do
        assert.is_not.contains_text(line.message, encoded)
      end
    end)
  end)

  describe("tokeninfo_url", function()
    it("appends the form-encoded token", function()
      local verdict, request = login(MODES.tokeninfo)

      helper.assert_verdict(verdict, "OK")
      assert.equal("GET", request.method)
      assert.equal(TOKENINFO_URL .. helper.TOKEN_FORM, request.url.text)
    end)

    it("sends no Authorization header", function()
      local _, request = login(MODES.tokeninfo)

      assert.same({ accept = "application/json" }, request.headers)
      assert.is_nil(request.body)
    end)
  end)

  local stages = {
    { mode = "auth", stage = "Userinfo", method = "GET" },
    { mode = "get", stage = "Userinfo", method = "GET" },
    { mode = "post", stage = "Introspection", method = "POST" },
    { mode = "tokeninfo", stage = "Tokeninfo", method = "GET" },
  }
  for _, case in ipairs(stages) do
    it(("passes HTTP options in %s"):format(case.mode), function()
      local ca_file = helper.temp_file("-----BEGIN CERTIFICATE-----\n")
      local lines = join(MODES[case.mode], {
        "timeout_msecs = 1500",
        "max_response_bytes = 4096",
        "tls_ca_cert_file = " .. ca_file,
        "tls_allow_invalid_cert = yes",
      })

      local _, request = login(lines)

      assert.equal(1500, request.options.timeoutMsecs)
      assert.equal(4096, request.options.maxResponseBytes)
      assert.equal(ca_file, request.options.caFile)
      assert.is_true(request.options.allowInvalidCertificate)
    end)

    it(("logs request and response in %s"):format(case.mode), function()
      local response = helper.json_response(good_claims({ active = true }))

      login(MODES[case.mode], response)
      local debug_lines = helper.messages(logger.lines, "debug")

      assert.contains_text(debug_lines[1], ("%s request: %s https://idp.example.test:"):format(case.stage, case.method))
      assert.equal(("%s response: HTTP 200, %d bytes"):format(case.stage, #response.body), debug_lines[2])
    end)
  end
end)

describe("validation status handling", function()
  local bridge
  local account_path
  local logger

  local function login(mode, response)
    local settings = bridge.config.parseSettings(helper.config_text(account_path, MODES[mode]), "test.conf")
    local transport = helper.transport(response)
    return bridge.passdb.verifyLogin(helper.context(bridge, settings, account_path, transport), USER, helper.TOKEN, logger)
  end

  before_each(function()
    bridge = helper.load_bridge()
    account_path = helper.accounts_file({ USER })
    logger = helper.logger()
  end)

  after_each(function()
    helper.remove_temp_files()
  end)

  -- The result for each status, per kind of endpoint. A userinfo endpoint rejects a bad Bearer
  -- token with 401 or 403 (RFC 6750 section 3.1), and a token URL such as Google's tokeninfo also
  -- with 400. An introspection endpoint returns 401 or 403 only for bad client credentials.
  local MISMATCH, FAILURE = "PASSWORD_MISMATCH", "INTERNAL_FAILURE"
  local expected = {
    auth = { [400] = FAILURE, [401] = MISMATCH, [403] = MISMATCH, [404] = FAILURE, [500] = FAILURE, [503] = FAILURE, [302] = FAILURE, [204] = FAILURE },
    get = { [400] = MISMATCH, [401] = MISMATCH, [403] = MISMATCH, [404] = FAILURE, [500] = FAILURE, [503] = FAILURE, [302] = FAILURE, [204] = FAILURE },
    post = { [400] = FAILURE, [401] = FAILURE, [403] = FAILURE, [404] = FAILURE, [500] = FAILURE, [503] = FAILURE, [302] = FAILURE, [204] = FAILURE },
    tokeninfo = { [400] = MISMATCH, [401] = MISMATCH, [403] = MISMATCH, [404] = FAILURE, [500] = FAILURE, [503] = FAILURE, [302] = FAILURE, [204] = FAILURE },
  }
  local stage_of = { auth = "Userinfo", get = "Userinfo", post = "Introspection", tokeninfo = "Tokeninfo" }

  for _, mode in ipairs({ "auth", "get", "post", "tokeninfo" }) do
    local statuses = {}
    for status in pairs(expected[mode]) do
      statuses[#statuses + 1] = status
    end
    table.sort(statuses)

    for _, status in ipairs(statuses) do
      local result = expected[mode][status]

      it(("returns %s for %s HTTP %d"):format(result, mode, status), function()
        local verdict = login(mode, { ok = true, status = status, body = '{"error":"invalid_token"}' })

        helper.assert_verdict(verdict, result, ("HTTP %d"):format(status))
        helper.assert_no_secrets(logger.lines, verdict.reason)
      end)
    end

    it(("names the stage in %s failures"):format(mode), function()
      local verdict = login(mode, { ok = false, error = "connection refused" })

      helper.assert_verdict(verdict, FAILURE, stage_of[mode] .. " request failed: connection refused (idp.example.test:")
    end)

    it(("rejects %s HTML body"):format(mode), function()
      local verdict = login(mode, { ok = true, status = 200, body = "<html>Sign in</html>" })

      helper.assert_verdict(verdict, FAILURE, "body is not valid JSON (HTTP 200 from idp.example.test:")
    end)
  end

  it("names the token in a mismatch", function()
    local verdict = login("auth", { ok = true, status = 401, body = "" })

    assert.equal("Token rejected by the identity provider: HTTP 401 from idp.example.test:443", verdict.reason)
  end)

  it("blames client credentials on 401", function()
    local verdict = login("post", { ok = true, status = 401, body = '{"error":"invalid_client"}' })

    assert.equal(
      "Introspection request failed: HTTP 401 from idp.example.test:8443. Check client_id and client_secret",
      verdict.reason
    )
  end)

  it("blames client credentials on 403", function()
    local verdict = login("post", { ok = true, status = 403, body = "" })

    assert.contains_text(verdict.reason, "Check client_id and client_secret")
  end)

  it("names a redirect as not followed", function()
    local verdict = login("post", { ok = true, status = 307, body = "" })

    assert.equal("Introspection request failed: HTTP 307 redirect from idp.example.test:8443 not followed", verdict.reason)
  end)
end)

describe("validation active rules", function()
  local bridge
  local account_path
  local logger

  local function login(mode, body)
    local settings = bridge.config.parseSettings(helper.config_text(account_path, MODES[mode]), "test.conf")
    local transport = helper.transport({ ok = true, status = 200, body = body })
    return bridge.passdb.verifyLogin(helper.context(bridge, settings, account_path, transport), USER, helper.TOKEN, logger)
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

  local with_email = ',"email":"alice@example.test"}'
  local cases = {
    { mode = "post", name = "active true", body = '{"active":true' .. with_email, result = "OK" },
    { mode = "post", name = "active absent", body = '{"sub":"x"' .. with_email, result = "INTERNAL_FAILURE", reason = "no active member" },
    { mode = "post", name = "active false", body = '{"active":false' .. with_email, result = "PASSWORD_MISMATCH", reason = "Token is not active" },
    { mode = "post", name = "active null", body = '{"active":null' .. with_email, result = "PASSWORD_MISMATCH", reason = "Token is not active" },
    { mode = "post", name = 'active "true"', body = '{"active":"true"' .. with_email, result = "PASSWORD_MISMATCH", reason = "Token is not active" },
    { mode = "post", name = "active 1", body = '{"active":1' .. with_email, result = "PASSWORD_MISMATCH", reason = "Token is not active" },
    { mode = "post", name = "active object", body = '{"active":{"value":true}' .. with_email, result = "PASSWORD_MISMATCH", reason = "Token is not active" },
    { mode = "post", name = "bare inactive answer", body = '{"active":false}', result = "PASSWORD_MISMATCH", reason = "Token is not active" },
    { mode = "post", name = "inactive for bob", body = '{"active":false,"email":"bob@example.test"}', result = "PASSWORD_MISMATCH", reason = "Token is not active" },
    { mode = "post", name = "inactive and expired", body = '{"active":false,"exp":1' .. with_email, result = "PASSWORD_MISMATCH", reason = "Token is not active" },
    { mode = "post", name = "inactive with bad exp", body = '{"active":false,"exp":"soon"' .. with_email, result = "PASSWORD_MISMATCH", reason = "Token is not active" },
    { mode = "auth", name = "userinfo without active", body = '{"sub":"x"' .. with_email, result = "OK" },
    { mode = "auth", name = "userinfo active false", body = '{"active":false' .. with_email, result = "PASSWORD_MISMATCH", reason = "Token is not active" },
    { mode = "get", name = "token URL without active", body = '{"sub":"x"' .. with_email, result = "OK" },
    { mode = "get", name = "token URL active null", body = '{"active":null' .. with_email, result = "PASSWORD_MISMATCH", reason = "Token is not active" },
    { mode = "tokeninfo", name = "tokeninfo without active", body = '{"sub":"x"' .. with_email, result = "OK" },
    { mode = "tokeninfo", name = 'tokeninfo active "false"', body = '{"active":"false"' .. with_email, result = "PASSWORD_MISMATCH", reason = "Token is not active" },
  }
  for _, case in ipairs(cases) do
    it(("returns %s for %s"):format(case.result, case.name), function()
      local verdict = login(case.mode, case.body)

      helper.assert_verdict(verdict, case.result, case.reason)
    end)
  end

  it("reads Authentik's inactive answer", function()
    local verdict = login("post", helper.fixture_text("authentik.introspection-inactive"))

    helper.assert_verdict(verdict, "PASSWORD_MISMATCH", "Token is not active")
  end)

  it("checks active before the claim", function()
    local verdict = login("post", cjson.encode({ active = false, email = { "not", "a", "string" } }))

    helper.assert_verdict(verdict, "PASSWORD_MISMATCH", "Token is not active")
  end)
end)
