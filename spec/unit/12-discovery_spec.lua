-- OpenID Connect discovery: which URL is fetched, how the document is checked, and when it is
-- fetched again, through passdb.verifyLogin with a Discovery object and a settable clock.

local cjson = require("cjson")
local helper = require("spec.unit.helper")

-- Every log line that a test records must be free of the token and the client secrets.
after_each(helper.assert_logs_clean)

local NOW = helper.NOW
local USER = helper.USER

local ISSUER = "https://idp.example.test/realms/mail"
local WELL_KNOWN = ISSUER .. "/.well-known/openid-configuration"
local USERINFO = ISSUER .. "/protocol/openid-connect/userinfo"
local INTROSPECT = ISSUER .. "/protocol/openid-connect/token/introspect"

local function document(overrides)
  local result = {
    issuer = ISSUER,
    userinfo_endpoint = USERINFO,
    introspection_endpoint = INTROSPECT,
    jwks_uri = ISSUER .. "/protocol/openid-connect/certs",
  }
  for key, value in pairs(overrides or {}) do
    result[key] = value
  end
  return result
end

describe("discovery.discoveryTarget", function()
  local bridge

  local function target(text)
    local url = assert(bridge.url.parseUrl(text))
    return bridge.discovery.discoveryTarget(url)
  end

  before_each(function()
    bridge = helper.load_bridge()
  end)

  local cases = {
    { name = "issuer URL", text = ISSUER, url = WELL_KNOWN, issuer = ISSUER },
    { name = "issuer with slash", text = ISSUER .. "/", url = WELL_KNOWN, issuer = ISSUER },
    { name = "host-only issuer", text = "https://idp.example.test", url = "https://idp.example.test/.well-known/openid-configuration", issuer = "https://idp.example.test" },
    { name = "well-known URL", text = WELL_KNOWN, url = WELL_KNOWN, issuer = nil },
    { name = "Authentik issuer", text = "https://auth.example.test/application/o/mail/", url = "https://auth.example.test/application/o/mail/.well-known/openid-configuration", issuer = "https://auth.example.test/application/o/mail" },
  }
  for _, case in ipairs(cases) do
    it(("reads %s"):format(case.name), function()
      local result = target(case.text)

      assert.equal(case.url, result.url.text)
      assert.equal(case.issuer, result.expectedIssuer)
    end)
  end
end)

describe("discovery documents", function()
  local bridge
  local account_path
  local logger
  local transport

  -- Runs one login with openid_configuration_url = `configured`, where the discovery request gets
  -- `discovery_response` (a response table, or a document table served as HTTP 200).
  local function login(discovery_response, lines, configured)
    local all = { "openid_configuration_url = " .. (configured or ISSUER) }
    for _, line in ipairs(lines or {}) do
      all[#all + 1] = line
    end
    local settings = bridge.config.parseSettings(helper.config_text(account_path, all), "test.conf")
    if discovery_response.ok == nil then
      discovery_response = helper.json_response(discovery_response)
    end
    local claims = helper.json_response({ active = true, email = USER })
    transport = helper.transport(helper.routes({
      [(configured or ISSUER):gsub("/+$", "")] = discovery_response,
      [USERINFO] = claims,
      [INTROSPECT] = claims,
      ["http://127.0.0.1:9000/userinfo"] = claims,
    }))
    local discovery = helper.new(bridge.discovery.Discovery, settings, settings.openid_configuration_url)
    local context = helper.context(bridge, settings, account_path, transport, { discovery = discovery })
    return bridge.passdb.verifyLogin(context, USER, helper.TOKEN, logger)
  end

  local POST = { "introspection_mode = post", "client_id = roundcube", "client_secret = " .. helper.CLIENT_SECRET }

  before_each(function()
    bridge = helper.load_bridge()
    account_path = helper.accounts_file({ USER })
    logger = helper.logger()
  end)

  after_each(function()
    helper.assert_no_secrets(logger.lines)
    helper.remove_temp_files()
  end)

  it("fetches the well-known URL", function()
    local verdict = login(document())

    helper.assert_verdict(verdict, "OK")
    assert.equal(WELL_KNOWN, transport.calls[1].url.text)
    assert.equal("GET", transport.calls[1].method)
  end)

  it("sends no token to discovery", function()
    login(document())
    local request = transport.calls[1]

    assert.same({ accept = "application/json" }, request.headers)
    assert.is_nil(request.body)
    assert.is_not.contains_text(request.url.text, helper.TOKEN_FORM)
  end)

  it("passes HTTP options to discovery", function()
    login(document(), { "timeout_msecs = 1200", "max_response_bytes = 2048" })
    local options = transport.calls[1].options

    assert.equal(1200, options.timeoutMsecs)
    assert.equal(2048, options.maxResponseBytes)
  end)

  it("uses userinfo_endpoint in mode auth", function()
    login(document())

    assert.equal(2, #transport.calls)
    assert.equal(USERINFO, transport.calls[2].url.text)
    assert.equal("Bearer " .. helper.TOKEN, transport.calls[2].headers.authorization)
  end)

  it("appends the token in mode get", function()
    login(document(), { "introspection_mode = get" })

    assert.equal(USERINFO .. "?access_token=" .. helper.TOKEN_FORM, transport.calls[2].url.text)
  end)

  it("uses introspection_endpoint in mode post", function()
    local verdict = login(document(), POST)

    helper.assert_verdict(verdict, "OK")
    assert.equal(INTROSPECT, transport.calls[2].url.text)
    assert.equal("POST", transport.calls[2].method)
  end)

  it("fetches a configured well-known URL", function()
    local verdict = login(document({ issuer = "https://other.example.test" }), {}, WELL_KNOWN)

    helper.assert_verdict(verdict, "OK")
    assert.equal(WELL_KNOWN, transport.calls[1].url.text)
  end)

  it("logs the discovery request", function()
    login(document())

    assert.equal("OpenID discovery request: GET https://idp.example.test:443", helper.messages(logger.lines, "debug")[1])
  end)

  it("skips discovery with introspection_url", function()
    local verdict = login(document(), { "introspection_url = " .. USERINFO })

    helper.assert_verdict(verdict, "OK")
    assert.equal(1, #transport.calls)
    assert.equal(USERINFO, transport.calls[1].url.text)
  end)

  local issuers = {
    { name = "same issuer", issuer = ISSUER, result = "OK" },
    { name = "issuer with slash", issuer = ISSUER .. "/", result = "OK" },
    { name = "other issuer", issuer = "https://idp.example.test/realms/other", result = "INTERNAL_FAILURE" },
    { name = "issuer prefix", issuer = "https://idp.example.test/realms", result = "INTERNAL_FAILURE" },
    { name = "http issuer", issuer = "http://idp.example.test/realms/mail", result = "INTERNAL_FAILURE" },
    { name = "absent issuer", issuer = cjson.null, result = "INTERNAL_FAILURE" },
    { name = "number issuer", issuer = 42, result = "INTERNAL_FAILURE" },
    { name = "array issuer", issuer = { ISSUER }, result = "INTERNAL_FAILURE" },
  }
  for _, case in ipairs(issuers) do
    it(("returns %s for %s"):format(case.result, case.name), function()
      local verdict = login(document({ issuer = case.issuer }))

      helper.assert_verdict(verdict, case.result, "OpenID discovery failed: the document from idp.example.test:443 names another issuer")
    end)
  end

  it("asks no endpoint after mismatch", function()
    login(document({ issuer = "https://evil.example.test" }))

    assert.equal(1, #transport.calls)
  end)

  local documents = {
    { name = "no userinfo_endpoint", document = document({ userinfo_endpoint = cjson.null }), reason = "OpenID discovery document has no userinfo_endpoint" },
    { name = "number userinfo_endpoint", document = document({ userinfo_endpoint = 42 }), reason = "userinfo_endpoint in the document from idp.example.test:443 is not a string" },
    { name = "array userinfo_endpoint", document = document({ userinfo_endpoint = { USERINFO } }), reason = "userinfo_endpoint in the document from idp.example.test:443 is not a string" },
    { name = "relative userinfo_endpoint", document = document({ userinfo_endpoint = "/userinfo" }), reason = "userinfo_endpoint in the document from idp.example.test:443 is invalid: the scheme must be http or https" },
    { name = "userinfo_endpoint with space", document = document({ userinfo_endpoint = "https://idp.example.test/user info" }), reason = "is invalid: it contains spaces" },
    { name = "http userinfo_endpoint", document = document({ userinfo_endpoint = "http://idp.example.test/userinfo" }), reason = "userinfo_endpoint in the document from idp.example.test:443 is not https" },
    { name = "http introspection_endpoint", document = document({ introspection_endpoint = "http://idp.example.test/introspect" }), reason = "introspection_endpoint in the document from idp.example.test:443 is not https" },
    { name = "no introspection_endpoint", lines = POST, document = document({ introspection_endpoint = cjson.null }), reason = "OpenID discovery document has no introspection_endpoint" },
  }
  for _, case in ipairs(documents) do
    it(("fails for %s"):format(case.name), function()
      local verdict = login(case.document, case.lines)

      helper.assert_verdict(verdict, "INTERNAL_FAILURE", case.reason)
      assert.equal(1, #transport.calls)
    end)
  end

  it("accepts http endpoints from http", function()
    local configured = "http://127.0.0.1:9000"
    local served = document({ issuer = configured, userinfo_endpoint = "http://127.0.0.1:9000/userinfo" })

    local verdict = login(served, {}, configured)

    helper.assert_verdict(verdict, "OK")
    assert.equal("http://127.0.0.1:9000/.well-known/openid-configuration", transport.calls[1].url.text)
    assert.equal("http://127.0.0.1:9000/userinfo", transport.calls[2].url.text)
  end)

  local failures = {
    { name = "connection refused", response = { ok = false, error = "connection refused" }, reason = "OpenID discovery failed: connection refused (idp.example.test:443)" },
    { name = "HTTP 500", response = { ok = true, status = 500, body = "" }, reason = "OpenID discovery failed: HTTP 500 from idp.example.test:443" },
    { name = "HTTP 404", response = { ok = true, status = 404, body = "" }, reason = "OpenID discovery failed: HTTP 404 from idp.example.test:443" },
    { name = "HTTP 302", response = { ok = true, status = 302, body = "" }, reason = "OpenID discovery failed: HTTP 302" },
    { name = "HTML body", response = { ok = true, status = 200, body = "<html></html>" }, reason = "OpenID discovery failed: body is not valid JSON (idp.example.test:443)" },
    { name = "array body", response = { ok = true, status = 200, body = "[]" }, reason = "OpenID discovery failed: body is not a JSON object" },
  }
  for _, case in ipairs(failures) do
    it(("fails temporarily on %s"):format(case.name), function()
      local verdict = login(case.response)

      helper.assert_verdict(verdict, "INTERNAL_FAILURE", case.reason)
      assert.equal(1, #transport.calls)
    end)
  end
end)

describe("discovery refresh", function()
  local bridge
  local account_path
  local logger
  local clock
  local discovery_response
  local transport
  local context

  local OTHER_USERINFO = ISSUER .. "/v2/userinfo"

  local function login()
    logger = helper.logger()
    return bridge.passdb.verifyLogin(context, USER, helper.TOKEN, logger)
  end

  local function discovery_calls()
    local count = 0
    for _, request in ipairs(transport.calls) do
      if request.url.text == WELL_KNOWN then
        count = count + 1
      end
    end
    return count
  end

  local function last_url()
    return transport.calls[#transport.calls].url.text
  end

  before_each(function()
    bridge = helper.load_bridge()
    account_path = helper.accounts_file({ USER })
    clock = NOW
    discovery_response = helper.json_response(document())
    local claims = helper.json_response({ email = USER })
    transport = helper.transport(helper.routes({
      [WELL_KNOWN] = function()
        return discovery_response
      end,
      [USERINFO] = claims,
      [OTHER_USERINFO] = claims,
    }))
    local lines = { "openid_configuration_url = " .. ISSUER, "discovery_refresh_secs = 600" }
    local settings = bridge.config.parseSettings(helper.config_text(account_path, lines), "test.conf")
    local discovery = helper.new(bridge.discovery.Discovery, settings, settings.openid_configuration_url)
    context = helper.context(bridge, settings, account_path, transport, {
      discovery = discovery,
      now = function()
        return clock
      end,
    })
  end)

  after_each(function()
    helper.assert_no_secrets(logger.lines)
    helper.remove_temp_files()
  end)

  it("keeps the document until refresh", function()
    login()
    clock = NOW + 599

    local verdict = login()

    helper.assert_verdict(verdict, "OK")
    assert.equal(1, discovery_calls())
  end)

  it("fetches again after refresh", function()
    login()
    discovery_response = helper.json_response(document({ userinfo_endpoint = OTHER_USERINFO }))
    clock = NOW + 600

    local verdict = login()

    helper.assert_verdict(verdict, "OK")
    assert.equal(2, discovery_calls())
    assert.equal(OTHER_USERINFO, last_url())
  end)

  it("keeps a stale document on failure", function()
    login()
    discovery_response = { ok = true, status = 503, body = "" }
    clock = NOW + 600

    local verdict = login()

    helper.assert_verdict(verdict, "OK")
    assert.equal(2, discovery_calls())
    assert.equal(USERINFO, last_url())
    assert.equal(1, #helper.messages(logger.lines, "warning"))
  end)

  it("warns when keeping a stale document", function()
    login()
    discovery_response = { ok = true, status = 503, body = "" }
    clock = NOW + 600

    login()

    assert.same(
      { "OpenID discovery refresh failed, using the previous document: HTTP 503 from idp.example.test:443" },
      helper.messages(logger.lines, "warning")
    )
  end)

  it("keeps a stale document on mismatch", function()
    login()
    discovery_response = helper.json_response(document({ issuer = "https://evil.example.test", userinfo_endpoint = OTHER_USERINFO }))
    clock = NOW + 600

    local verdict = login()

    helper.assert_verdict(verdict, "OK")
    assert.equal(USERINFO, last_url())
  end)

  it("retries a failed refresh later", function()
    login()
    discovery_response = { ok = false, error = "timeout" }
    clock = NOW + 600
    login()
    discovery_response = helper.json_response(document({ userinfo_endpoint = OTHER_USERINFO }))

    clock = NOW + 609
    login()
    local calls_in_window = discovery_calls()
    clock = NOW + 610
    login()

    assert.equal(2, calls_in_window)
    assert.equal(3, discovery_calls())
    assert.equal(OTHER_USERINFO, last_url())
  end)

  it("fails before the first fetch", function()
    discovery_response = { ok = false, error = "connection refused" }

    local verdict = login()

    helper.assert_verdict(verdict, "INTERNAL_FAILURE", "OpenID discovery failed: connection refused (idp.example.test:443)")
    assert.equal(1, #transport.calls)
  end)

  it("repeats the reason in the retry window", function()
    discovery_response = { ok = true, status = 502, body = "" }
    login()
    discovery_response = helper.json_response(document())
    clock = NOW + 9

    local verdict = login()

    helper.assert_verdict(verdict, "INTERNAL_FAILURE", "OpenID discovery failed: HTTP 502 from idp.example.test:443")
    assert.equal(1, discovery_calls())
  end)

  it("recovers after the retry window", function()
    discovery_response = { ok = true, status = 502, body = "" }
    login()
    discovery_response = helper.json_response(document())
    clock = NOW + 10

    local verdict = login()

    helper.assert_verdict(verdict, "OK")
    assert.equal(2, discovery_calls())
  end)

  it("logs no warning before the first fetch", function()
    discovery_response = { ok = true, status = 502, body = "" }

    login()

    assert.same({}, helper.messages(logger.lines, "warning"))
  end)
end)
