local helper = require("spec.unit.helper")

-- Every log line that a test records must be free of the token and the client secrets.
after_each(helper.assert_logs_clean)

local NOW = helper.NOW
local USER = helper.USER

-- A userinfo body for USER that passes every check, with `overrides` applied.
local function claims(overrides)
  local result = {
    sub = "5f3c0a1e9b2d",
    email = USER,
    email_verified = true,
    exp = NOW + 300,
  }
  for key, value in pairs(overrides or {}) do
    result[key] = value
  end
  return result
end

local function status(code, body)
  return { ok = true, status = code, body = body or "" }
end

local function body(text)
  return { ok = true, status = 200, body = text }
end

describe("passdb.verifyLogin outcomes", function()
  local bridge
  local account_path
  local settings
  local logger

  local function verify(response, user, token)
    local transport = helper.transport(response)
    local context = helper.context(bridge, settings, account_path, transport)
    return bridge.passdb.verifyLogin(context, user or USER, token or helper.TOKEN, logger), transport
  end

  before_each(function()
    bridge = helper.load_bridge()
    account_path = helper.accounts_file({ USER, "bob@example.test" })
    settings = bridge.config.parseSettings(helper.settings_text(account_path), "test.conf")
    logger = helper.logger()
  end)

  after_each(function()
    helper.remove_temp_files()
  end)

  local cases = {
    { name = "HTTP 401", response = status(401, '{"error":"invalid_token"}'), result = "PASSWORD_MISMATCH", reason = "HTTP 401 from idp.example.test:443" },
    { name = "HTTP 403", response = status(403, '{"error":"insufficient_scope"}'), result = "PASSWORD_MISMATCH", reason = "HTTP 403" },
    { name = "connection refused", response = { ok = false, error = "connection refused" }, result = "INTERNAL_FAILURE", reason = "connection refused (idp.example.test:443)" },
    { name = "timeout", response = { ok = false, error = "timeout" }, result = "INTERNAL_FAILURE", reason = "Userinfo request failed: timeout" },
    { name = "TLS failure", response = { ok = false, error = "TLS handshake failed: certificate verify failed" }, result = "INTERNAL_FAILURE", reason = "TLS handshake failed" },
    { name = "oversized body", response = { ok = false, error = "response body larger than 65536 bytes" }, result = "INTERNAL_FAILURE", reason = "larger than 65536 bytes" },
    { name = "HTTP 500", response = status(500, "Internal Server Error"), result = "INTERNAL_FAILURE", reason = "HTTP 500" },
    { name = "HTTP 502", response = status(502, "<html>Bad Gateway</html>"), result = "INTERNAL_FAILURE", reason = "HTTP 502" },
    { name = "HTTP 503", response = status(503, ""), result = "INTERNAL_FAILURE", reason = "HTTP 503 from idp.example.test:443" },
    { name = "HTTP 301", response = status(301, ""), result = "INTERNAL_FAILURE", reason = "HTTP 301 redirect" },
    { name = "HTTP 302", response = status(302, ""), result = "INTERNAL_FAILURE", reason = "HTTP 302 redirect" },
    { name = "HTTP 307", response = status(307, ""), result = "INTERNAL_FAILURE", reason = "not followed" },
    { name = "HTTP 204", response = status(204, ""), result = "INTERNAL_FAILURE", reason = "HTTP 204" },
    { name = "HTTP 400", response = status(400, '{"error":"invalid_request"}'), result = "INTERNAL_FAILURE", reason = "HTTP 400" },
    { name = "HTML body", response = body("<!DOCTYPE html><html><body>Login</body></html>"), result = "INTERNAL_FAILURE", reason = "body is not valid JSON" },
    { name = "array body", response = body('[{"email":"alice@example.test"}]'), result = "INTERNAL_FAILURE", reason = "body is not a JSON object" },
    { name = "scalar body", response = body('"alice@example.test"'), result = "INTERNAL_FAILURE", reason = "body is not a JSON object" },
    { name = "empty body", response = body(""), result = "INTERNAL_FAILURE", reason = "body is not valid JSON" },
    { name = "active false", response = helper.json_response(claims({ active = false })), result = "PASSWORD_MISMATCH", reason = "Token is not active" },
    { name = 'active "true"', response = helper.json_response(claims({ active = "true" })), result = "PASSWORD_MISMATCH", reason = "Token is not active" },
    { name = "inactive token for bob", response = helper.json_response(claims({ active = false, email = "bob@example.test" })), result = "PASSWORD_MISMATCH", reason = "Token is not active" },
    { name = "inactive without claim", response = body('{"active":false}'), result = "PASSWORD_MISMATCH", reason = "Token is not active" },
    { name = "active null", response = body('{"active":null,"email":"alice@example.test"}'), result = "PASSWORD_MISMATCH", reason = "Token is not active" },
    { name = "exp past the clock skew", response = helper.json_response(claims({ exp = NOW - 30 })), result = "PASSWORD_MISMATCH", reason = "Token has expired" },
    { name = "exp within the clock skew", response = helper.json_response(claims({ exp = NOW - 29 })), result = "OK" },
    { name = "exp not a number", response = helper.json_response(claims({ exp = "tomorrow" })), result = "INTERNAL_FAILURE", reason = "Claim exp is not a number" },
    { name = "exp NaN", response = body('{"email":"alice@example.test","exp":NaN}'), result = "INTERNAL_FAILURE" },
    { name = "claim missing", response = body('{"sub":"5f3c0a1e9b2d","name":"Alice"}'), result = "INTERNAL_FAILURE", reason = "claim email is missing" },
    { name = "claim empty", response = helper.json_response(claims({ email = "" })), result = "INTERNAL_FAILURE", reason = "claim email is empty" },
    { name = "claim number", response = helper.json_response(claims({ email = 42 })), result = "INTERNAL_FAILURE", reason = "claim email is not a string (number)" },
    { name = "claim boolean", response = helper.json_response(claims({ email = true })), result = "INTERNAL_FAILURE", reason = "claim email is not a string (boolean)" },
    { name = "claim array", response = helper.json_response(claims({ email = { USER } })), result = "INTERNAL_FAILURE", reason = "claim email is not a string" },
    { name = "claim null", response = body('{"sub":"5f3c0a1e9b2d","email":null}'), result = "INTERNAL_FAILURE", reason = "claim email is missing" },
    { name = "claim for another user", response = helper.json_response(claims({ email = "bob@example.test" })), result = "PASSWORD_MISMATCH", reason = "Token belongs to bob@example.test (claim email)" },
    { name = "claim with another domain", response = helper.json_response(claims({ email = "alice@example.org" })), result = "PASSWORD_MISMATCH", reason = "not to the login name" },
    { name = "user not in accounts", user = "frank@example.test", response = helper.json_response(claims({ email = "frank@example.test" })), result = "USER_UNKNOWN", reason = "No mailbox for the login name" },
    { name = "account file missing", remove_accounts = true, response = helper.json_response(claims()), result = "INTERNAL_FAILURE", reason = "Account list unavailable" },
    { name = "all checks passing", response = helper.json_response(claims()), result = "OK" },
    { name = "mixed-case login name", user = "Alice@Example.TEST", response = helper.json_response(claims()), result = "OK" },
    { name = "mixed-case claim", response = helper.json_response(claims({ email = "ALICE@example.test" })), result = "OK" },
    { name = "exp boolean", response = helper.json_response(claims({ exp = false })), result = "INTERNAL_FAILURE", reason = "Claim exp is not a number" },
    { name = "no exp claim", response = body('{"email":"alice@example.test"}'), result = "OK" },
    { name = "active true", response = helper.json_response(claims({ active = true })), result = "OK" },
  }

  for _, case in ipairs(cases) do
    local function run()
      if case.remove_accounts then
        os.remove(account_path)
      end
      return verify(case.response, case.user)
    end

    it(("returns %s for %s"):format(case.result, case.name), function()
      local verdict = run()

      if case.result == "OK" then
        assert.is_true(verdict.ok)
      else
        assert.is_false(verdict.ok)
        assert.equal(case.result, verdict.result)
        if case.reason ~= nil then
          assert.contains_text(verdict.reason, case.reason)
        end
      end
    end)

    it(("hides secrets for %s"):format(case.name), function()
      local verdict = run()

      helper.assert_no_secrets(logger.lines, verdict.reason)
    end)
  end

  it("sends exactly one request", function()
    local _, transport = verify(helper.json_response(claims()))

    assert.equal(1, #transport.calls)
  end)

  it("sends the token as a Bearer header", function()
    local _, transport = verify(helper.json_response(claims()))

    assert.equal("Bearer " .. helper.TOKEN, transport.calls[1].headers.authorization)
  end)

  it("asks for a JSON response", function()
    local _, transport = verify(helper.json_response(claims()))

    assert.equal("application/json", transport.calls[1].headers.accept)
  end)

  it("sends the token in no other header", function()
    local _, transport = verify(helper.json_response(claims()))

    for name, value in pairs(transport.calls[1].headers) do
      if name ~= "authorization" then
        assert.is_not.contains_text(value, helper.TOKEN)
      end
    end
  end)

  it("requests the configured userinfo URL", function()
    local _, transport = verify(helper.json_response(claims()))

    assert.equal(helper.USERINFO_URL, transport.calls[1].url.text)
  end)

  it("returns no fields without pass_attrs", function()
    local verdict = verify(helper.json_response(claims()))

    assert.same({}, verdict.fields)
  end)

  it("passes the configured HTTP limits", function()
    settings = bridge.config.parseSettings(
      helper.settings_text(account_path, { "timeout_msecs = 1500", "max_response_bytes = 4096" }),
      "test.conf"
    )

    local _, transport = verify(helper.json_response(claims()))
    local options = transport.calls[1].options

    assert.equal(1500, options.timeoutMsecs)
    assert.equal(4096, options.maxResponseBytes)
    assert.is_false(options.allowInvalidCertificate)
    assert.is_nil(options.caFile)
  end)

  it("passes the TLS settings", function()
    local ca_file = helper.temp_file("-----BEGIN CERTIFICATE-----\n")
    settings = bridge.config.parseSettings(
      helper.settings_text(account_path, { "tls_ca_cert_file = " .. ca_file, "tls_allow_invalid_cert = yes" }),
      "test.conf"
    )

    local _, transport = verify(helper.json_response(claims()))
    local options = transport.calls[1].options

    assert.equal(ca_file, options.caFile)
    assert.is_true(options.allowInvalidCertificate)
  end)

  it("logs the request at debug level", function()
    verify(helper.json_response(claims()))

    local debug_lines = helper.messages(logger.lines, "debug")

    assert.contains_text(debug_lines[1], "Userinfo request: GET https://idp.example.test:443")
  end)

  it("logs the account list load", function()
    verify(helper.json_response(claims()))

    local info_lines = helper.messages(logger.lines, "info")

    assert.equal(1, #info_lines)
    assert.contains_text(info_lines[1], "2 accounts")
  end)

  it("warns about malformed account lines", function()
    helper.rewrite(account_path, "alice@example.test|hash\nnot an account\n")

    verify(helper.json_response(claims()))

    local warning_lines = helper.messages(logger.lines, "warning")

    assert.equal(1, #warning_lines)
    assert.contains_text(warning_lines[1], "skipped malformed lines 2")
    assert.is_not.contains_text(warning_lines[1], "not an account")
  end)

  it("logs no error lines when rejecting", function()
    verify(status(401))

    assert.same({}, helper.messages(logger.lines, "error"))
  end)
end)

describe("passdb.verifyLogin account outcomes", function()
  local bridge
  local settings
  local logger

  local LOCATION = "ldap://127.0.0.1:3389 (ou=people,dc=example,dc=test)"

  local function verify(source, response, user)
    local transport = helper.transport(response or helper.json_response(claims()))
    local context = helper.context(bridge, settings, nil, transport, { accounts = source })
    return bridge.passdb.verifyLogin(context, user or USER, helper.TOKEN, logger)
  end

  before_each(function()
    bridge = helper.load_bridge()
    local account_path = helper.accounts_file({ USER })
    settings = bridge.config.parseSettings(helper.settings_text(account_path), "test.conf")
    logger = helper.logger()
  end)

  after_each(helper.remove_temp_files)

  local cases = {
    { status = "found", result = "OK" },
    { status = "missing", result = "USER_UNKNOWN", reason = "No mailbox for the login name in " .. LOCATION },
    { status = "disabled", result = "USER_DISABLED", reason = "Mailbox is disabled in " .. LOCATION },
    {
      status = "unavailable",
      detail = "LDAP search failed: LuaLDAP: result error",
      result = "INTERNAL_FAILURE",
      reason = "Account list unavailable: LDAP search failed: LuaLDAP: result error",
    },
  }
  for _, case in ipairs(cases) do
    it(("returns %s for %s"):format(case.result, case.status), function()
      local source = helper.account_source({ status = case.status, reason = case.detail }, LOCATION)

      local verdict = verify(source)

      helper.assert_verdict(verdict, case.result)
      if case.reason ~= nil then
        assert.equal(case.reason, verdict.reason)
      end
    end)
  end

  it("logs the found mailbox at debug level", function()
    verify(helper.account_source({ status = "found" }, LOCATION))

    local debug_lines = helper.messages(logger.lines, "debug")

    assert.equal("Mailbox found in " .. LOCATION, debug_lines[#debug_lines])
  end)

  it("passes login name and logger", function()
    local source = helper.account_source({ status = "found" }, LOCATION)

    verify(source, nil, "Alice@Example.TEST")

    assert.equal(1, #source.lookups)
    assert.equal("Alice@Example.TEST", source.lookups[1].name)
    assert.equal(logger, source.lookups[1].log)
  end)

  -- The account source is queried only after the token proved the identity, so the result for a
  -- rejected token never reveals whether a mailbox exists.
  local rejected = {
    { name = "rejected token", response = status(401, '{"error":"invalid_token"}'), result = "PASSWORD_MISMATCH" },
    { name = "unreachable provider", response = { ok = false, error = "connection refused" }, result = "INTERNAL_FAILURE" },
    { name = "token of another user", response = helper.json_response(claims({ email = "bob@example.test" })), result = "PASSWORD_MISMATCH" },
  }
  for _, case in ipairs(rejected) do
    it(("skips the lookup for %s"):format(case.name), function()
      local source = helper.account_source({ status = "missing" }, LOCATION)

      local verdict = verify(source, case.response)

      helper.assert_verdict(verdict, case.result)
      assert.equal(0, #source.lookups)
    end)
  end
end)

describe("passdb.verifyLogin token syntax", function()
  local bridge
  local context
  local transport
  local logger

  before_each(function()
    bridge = helper.load_bridge()
    local account_path = helper.accounts_file({ USER })
    transport = helper.transport(helper.json_response(claims()))
    local settings = bridge.config.parseSettings(helper.settings_text(account_path), "test.conf")
    context = helper.context(bridge, settings, account_path, transport)
    logger = helper.logger()
  end)

  after_each(function()
    helper.remove_temp_files()
  end)

  local invalid = {
    { name = "empty token", token = "" },
    { name = "space inside", token = "spec-token abc" },
    { name = "Bearer prefix", token = "Bearer spec-token" },
    { name = "CR LF inside", token = "spec-token\r\nHost: idp.example.test" },
    { name = "trailing LF", token = "spec-token\n" },
    { name = "NUL byte", token = "spec-token\0abc" },
    { name = "tab", token = "spec\ttoken" },
    { name = "equals inside", token = "ab=cd" },
    { name = "only padding", token = "==" },
    { name = "quote", token = 'spec"token' },
    { name = "comma", token = "spec,token" },
    { name = "non-ASCII letter", token = "spec-tökén" },
  }
  for _, case in ipairs(invalid) do
    it(("rejects %s before HTTP"):format(case.name), function()
      local verdict = bridge.passdb.verifyLogin(context, USER, case.token, logger)

      assert.is_false(verdict.ok)
      assert.equal("PASSWORD_MISMATCH", verdict.result)
      assert.equal(("Token is not a valid bearer token (%d bytes)"):format(#case.token), verdict.reason)
      assert.equal(0, #transport.calls)
    end)
  end

  local valid = {
    { name = "every b64token character", token = "AZaz09-._~+/" },
    { name = "trailing padding", token = "abc==" },
    { name = "JWT", token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl" },
    { name = "single character", token = "a" },
  }
  for _, case in ipairs(valid) do
    it(("sends %s"):format(case.name), function()
      local verdict = bridge.passdb.verifyLogin(context, USER, case.token, logger)

      assert.is_true(verdict.ok)
      assert.equal(1, #transport.calls)
      assert.equal("Bearer " .. case.token, transport.calls[1].headers.authorization)
    end)
  end
end)

describe("passdb.verifyLogin identity mapping", function()
  local bridge
  local account_path

  local function verify(lines, response, now)
    local settings = bridge.config.parseSettings(helper.settings_text(account_path, lines), "test.conf")
    local transport = helper.transport(response)
    local context = helper.context(bridge, settings, account_path, transport, { now = now })
    return bridge.passdb.verifyLogin(context, USER, helper.TOKEN, helper.logger())
  end

  before_each(function()
    bridge = helper.load_bridge()
    account_path = helper.accounts_file({ USER })
  end)

  after_each(function()
    helper.remove_temp_files()
  end)

  it("maps a local part with username_format", function()
    local verdict = verify(
      { "username_format = %Ln@example.test" },
      helper.json_response(claims({ email = "Alice@corp.example.test" }))
    )

    helper.assert_verdict(verdict, "OK")
  end)

  local paths = {
    { name = "nested claim", attribute = "ext.email", body = { ext = { email = USER } }, result = "OK" },
    { name = "deeper nesting", attribute = "a.b.c", body = { a = { b = { c = USER } } }, result = "OK" },
    { name = "dotted claim name", attribute = "https://example.test/email", body = { ["https://example.test/email"] = USER }, result = "OK" },
    { name = "exact name before path", attribute = "ext.email", body = { ["ext.email"] = USER, ext = { email = "bob@example.test" } }, result = "OK" },
    { name = "path through a string", attribute = "ext.email", body = { ext = "alice" }, result = "INTERNAL_FAILURE", reason = "claim ext.email is missing" },
    { name = "path to an object", attribute = "ext", body = { ext = { email = USER } }, result = "INTERNAL_FAILURE", reason = "claim ext is not a string (object or array)" },
    { name = "missing nested claim", attribute = "ext.email", body = { ext = { name = "Alice" } }, result = "INTERNAL_FAILURE", reason = "claims present: ext" },
    { name = "nested number", attribute = "ext.email", body = { ext = { email = 42 } }, result = "INTERNAL_FAILURE", reason = "not a string (number)" },
  }
  for _, case in ipairs(paths) do
    it(("reads %s"):format(case.name), function()
      local verdict = verify({ "username_attribute = " .. case.attribute }, helper.json_response(case.body))

      helper.assert_verdict(verdict, case.result, case.reason)
    end)
  end
end)
