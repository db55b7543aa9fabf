local cjson = require("cjson")
local socket = require("socket")
local helper = require("spec.unit.helper")

-- Every log line that a test records must be free of the token and the client secrets.
after_each(helper.assert_logs_clean)

local USER = helper.USER
local VARIABLE = "OAUTH2_BRIDGE_CONFIG"

local function good_claims()
  return cjson.encode({ sub = "5f3c0a1e9b2d", email = USER, exp = os.time() + 3600 })
end

-- Replaces os.getenv so that OAUTH2_BRIDGE_CONFIG reads as `value`. Returns the undo function.
local function set_settings_variable(value)
  local real_getenv = os.getenv
  os.getenv = function(name)
    if name == VARIABLE then
      return value
    end
    return real_getenv(name)
  end
  return function()
    os.getenv = real_getenv
  end
end

local function shell_quote(text)
  return "'" .. text:gsub("'", "'\\''") .. "'"
end

describe("entry settingsPath", function()
  local bridge
  local restore_environment

  before_each(function()
    bridge = helper.load_bridge()
  end)

  after_each(function()
    restore_environment()
  end)

  it("uses the environment variable", function()
    restore_environment = set_settings_variable("/srv/mail/oauth2-bridge.conf")

    assert.equal("/srv/mail/oauth2-bridge.conf", bridge.settingsPath())
  end)

  it("falls back to the default when unset", function()
    restore_environment = set_settings_variable(nil)

    assert.equal("/etc/dovecot/oauth2-bridge.conf", bridge.settingsPath())
  end)

  it("falls back to the default when empty", function()
    restore_environment = set_settings_variable("")

    assert.equal("/etc/dovecot/oauth2-bridge.conf", bridge.settingsPath())
  end)
end)

describe("entry hooks", function()
  local bridge
  local network
  local reply
  local account_path
  local settings_path
  local restore_environment

  local function write_settings(extra)
    helper.rewrite(settings_path, helper.settings_text(account_path, extra))
  end

  local function init_error()
    local ok, problem = pcall(script_init)

    assert.is_false(ok, "script_init returned instead of raising")
    return problem
  end

  before_each(function()
    account_path = helper.accounts_file({ USER, "bob@example.test" })
    settings_path = helper.temp_file("")
    write_settings()
    restore_environment = set_settings_variable(settings_path)

    reply = function()
      return 200, { good_claims() }
    end
    network = helper.fake_network(function(request)
      return reply(request)
    end)
    bridge = helper.load_bridge_with_network(network)
  end)

  after_each(function()
    restore_environment()
    helper.remove_temp_files()
  end)

  it("sets the Dovecot globals", function()
    assert.equal(bridge.scriptInit, script_init)
    assert.equal(bridge.scriptDeinit, script_deinit)
    assert.equal(bridge.authPasswordVerify, auth_password_verify)
  end)

  it("returns 0 from script_init", function()
    assert.equal(0, script_init())
  end)

  it("names the bad key in script_init", function()
    write_settings({ "timeout_msecs = soon" })

    local problem = init_error()

    assert.equal("string", type(problem))
    assert.contains_text(problem, "oauth2-bridge: ")
    assert.contains_text(problem, "timeout_msecs")
    assert.contains_text(problem, "Use a number from 1 to 600000")
  end)

  it("names the file when settings are missing", function()
    os.remove(settings_path)

    local problem = init_error()

    assert.contains_text(problem, "cannot read the settings file")
    assert.contains_text(problem, settings_path)
    assert.contains_text(problem, VARIABLE)
  end)

  it("names account_file when it is missing", function()
    os.remove(account_path)

    local problem = init_error()

    assert.contains_text(problem, "account_file")
  end)

  it("names account_file when it is a directory", function()
    helper.rewrite(settings_path, helper.settings_text(helper.temp_dir()))

    local problem = init_error()

    assert.contains_text(problem, "account_file")
    assert.contains_text(problem, "Check the path and its permissions")
  end)

  it("hides client_secret in script_init errors", function()
    write_settings({ "debug = yes" })

    local problem = init_error()

    assert.contains_text(problem, "debug")
    assert.is_not.contains_text(problem, helper.CLIENT_SECRET)
  end)

  it("fails before script_init", function()
    local req = helper.request()

    local code, reason = auth_password_verify(req, helper.TOKEN)

    assert.equal(dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, code)
    assert.contains_text(reason, "script_init did not run")
    assert.equal(0, #network.requests)
  end)

  it("fails after script_deinit", function()
    script_init()
    script_deinit()

    local code = auth_password_verify(helper.request(), helper.TOKEN)

    assert.equal(dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, code)
  end)

  describe("after script_init", function()
    before_each(function()
      script_init()
    end)

    it("returns OK with a table", function()
      local results = table.pack(auth_password_verify(helper.request(), helper.TOKEN))

      assert.equal(2, results.n)
      assert.equal(dovecot.auth.PASSDB_RESULT_OK, results[1])
      assert.equal("table", type(results[2]))
      assert.same({}, results[2])
    end)

    it("logs the acceptance at info level", function()
      local req = helper.request()

      auth_password_verify(req, helper.TOKEN)
      local info_lines = helper.messages(req.lines, "info")

      assert.equal("Token accepted", info_lines[#info_lines])
    end)

    local rejections = {
      { name = "HTTP 401", reply = function() return 401, { '{"error":"invalid_token"}' } end, result = "PASSWORD_MISMATCH" },
      { name = "HTTP 503", reply = function() return 503, { "unavailable" } end, result = "INTERNAL_FAILURE" },
      { name = "HTTP 302", reply = function() return 302, { "" } end, result = "INTERNAL_FAILURE" },
      { name = "connection refused", reply = function() return nil, "connection refused" end, result = "INTERNAL_FAILURE" },
      { name = "another user", user = "bob@example.test", result = "PASSWORD_MISMATCH" },
      {
        name = "unknown mailbox",
        user = "frank@example.test",
        reply = function() return 200, { cjson.encode({ email = "frank@example.test" }) } end,
        result = "USER_UNKNOWN",
      },
      { name = "invalid token", token = "not a token", result = "PASSWORD_MISMATCH" },
    }
    for _, case in ipairs(rejections) do
      it(("returns %s for %s"):format(case.result, case.name), function()
        reply = case.reply or reply
        local req = helper.request({ user = case.user or USER })

        local results = table.pack(auth_password_verify(req, case.token or helper.TOKEN))

        assert.equal(2, results.n)
        assert.equal(helper.result_code(case.result), results[1])
        assert.equal("string", type(results[2]))
        helper.assert_no_secrets(req.lines, results[2])
      end)
    end

    it("logs a mismatch reason at info level", function()
      reply = function()
        return 401, { '{"error":"invalid_token"}' }
      end
      local req = helper.request()

      local _, reason = auth_password_verify(req, helper.TOKEN)

      assert.same({ reason }, helper.messages(req.lines, "info"))
    end)

    it("leaves INTERNAL_FAILURE reasons to Dovecot", function()
      reply = function()
        return 503, { "unavailable" }
      end
      local req = helper.request()

      local _, reason = auth_password_verify(req, helper.TOKEN)

      for _, line in ipairs(req.lines) do
        assert.is_not.equal(reason, line.message)
      end
    end)

    it("turns a raised error into INTERNAL_FAILURE", function()
      reply = function()
        error("simulated bug in the transport")
      end

      local code, reason = auth_password_verify(helper.request(), helper.TOKEN)

      assert.equal(dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, code)
      assert.contains_text(reason, "oauth2-bridge internal error")
      assert.contains_text(reason, "simulated bug in the transport")
    end)

    it("turns a raised table into INTERNAL_FAILURE", function()
      reply = function()
        error({ message = "simulated error object" })
      end

      local code, reason = auth_password_verify(helper.request(), helper.TOKEN)

      assert.equal(dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, code)
      assert.contains_text(reason, "simulated error object")
    end)

    it("turns a nil user into INTERNAL_FAILURE", function()
      local req = helper.request()
      req.user = nil

      local code = auth_password_verify(req, helper.TOKEN)

      assert.equal(dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, code)
    end)

    it("turns a nil token into INTERNAL_FAILURE", function()
      local code = auth_password_verify(helper.request(), nil)

      assert.equal(dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, code)
    end)

    it("hides secrets when accepting", function()
      local req = helper.request()

      auth_password_verify(req, helper.TOKEN)

      helper.assert_no_secrets(req.lines)
    end)

    it("sends GET to configured URL", function()
      auth_password_verify(helper.request(), helper.TOKEN)
      local request = network.requests[1]

      assert.equal(helper.USERINFO_URL, request.url)
      assert.equal("GET", request.method)
    end)

    it("connects to the URL's host and port", function()
      auth_password_verify(helper.request(), helper.TOKEN)

      assert.equal("idp.example.test", network.connections[1].host)
      assert.equal(443, network.connections[1].port)
    end)

    it("sends Host without the default port", function()
      auth_password_verify(helper.request(), helper.TOKEN)

      assert.equal("idp.example.test", network.requests[1].headers.host)
    end)

    it("sends the Bearer header", function()
      auth_password_verify(helper.request(), helper.TOKEN)

      assert.equal("Bearer " .. helper.TOKEN, network.requests[1].headers.authorization)
    end)

    it("sends its user agent", function()
      auth_password_verify(helper.request(), helper.TOKEN)

      assert.equal("dovecot-oauth2-bridge", network.requests[1].headers["user-agent"])
    end)

    it("does not follow a redirect", function()
      reply = function()
        return 302, { "" }, { location = "https://idp.example.test/elsewhere" }
      end

      local code, reason = auth_password_verify(helper.request(), helper.TOKEN)

      assert.equal(dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, code)
      assert.contains_text(reason, "HTTP 302 redirect")
      assert.equal(1, #network.requests)
    end)

    it("verifies the certificate with the system CAs", function()
      auth_password_verify(helper.request(), helper.TOKEN)
      local params = network.tls[1]

      assert.equal("peer", params.verify)
      assert.equal("/etc/ssl/certs", params.capath)
      assert.is_nil(params.cafile)
    end)

    it("sends the host name as SNI", function()
      auth_password_verify(helper.request(), helper.TOKEN)

      assert.equal("idp.example.test", network.connections[1].sni)
    end)

    it("keeps the connection for the next login", function()
      auth_password_verify(helper.request(), helper.TOKEN)
      auth_password_verify(helper.request(), "second-spec-token.Lp3Vx8")

      assert.equal(2, #network.requests)
      assert.equal(1, #network.connections)
      assert.is_false(network.connections[1].closed)
    end)

    it("closes kept connections in script_deinit", function()
      auth_password_verify(helper.request(), helper.TOKEN)

      script_deinit()

      assert.is_true(network.connections[1].closed)
    end)

    it("answers a cached token without a request", function()
      local first = auth_password_verify(helper.request(), helper.TOKEN)
      local second = auth_password_verify(helper.request(), helper.TOKEN)

      assert.equal(dovecot.auth.PASSDB_RESULT_OK, first)
      assert.equal(dovecot.auth.PASSDB_RESULT_OK, second)
      assert.equal(1, #network.requests)
    end)

    it("accepts a chunked body", function()
      local text = good_claims()
      reply = function()
        return 200, { text:sub(1, 10), text:sub(11, 20), text:sub(21) }
      end

      local code = auth_password_verify(helper.request(), helper.TOKEN)

      assert.equal(dovecot.auth.PASSDB_RESULT_OK, code)
    end)
  end)

  it("returns pass_attrs fields", function()
    write_settings({ "pass_attrs = proxy=y host=%{oauth2:email} nopassword=" })
    script_init()

    local code, fields = auth_password_verify(helper.request(), helper.TOKEN)

    assert.equal(dovecot.auth.PASSDB_RESULT_OK, code)
    assert.same({ proxy = "y", host = USER, nopassword = "" }, fields)
  end)

  describe("with introspection_mode post", function()
    local request

    before_each(function()
      write_settings({ "introspection_mode = post" })
      reply = function()
        return 200, { cjson.encode({ active = true, email = USER }) }
      end
      script_init()
      auth_password_verify(helper.request(), helper.TOKEN)
      request = network.requests[1]
    end)

    it("sends POST to configured URL", function()
      assert.equal("POST", request.method)
      assert.equal(helper.USERINFO_URL, request.url)
    end)

    it("sends the form as the body", function()
      assert.equal("token=" .. helper.TOKEN_FORM .. "&token_type_hint=access_token", request.body)
    end)

    it("sends Content-Length of the form", function()
      assert.equal(tostring(#request.body), request.headers["content-length"])
    end)

    it("sends form and Basic headers", function()
      assert.equal("application/x-www-form-urlencoded", request.headers["content-type"])
      assert.equal("Basic cm91bmRjdWJlOnNwZWMtY2xpZW50LXNlY3JldC1WcjRVeDhacQ==", request.headers.authorization)
      assert.equal("dovecot-oauth2-bridge", request.headers["user-agent"])
    end)
  end)

  describe("with openid_configuration_url", function()
    local ISSUER = "https://idp.example.test/realms/mail"
    local WELL_KNOWN = ISSUER .. "/.well-known/openid-configuration"
    local USERINFO = ISSUER .. "/userinfo"
    local discovery_status

    before_each(function()
      helper.rewrite(settings_path, helper.config_text(account_path, { "openid_configuration_url = " .. ISSUER }))
      discovery_status = 200
      reply = function(request)
        if request.url == WELL_KNOWN then
          return discovery_status, { cjson.encode({ issuer = ISSUER, userinfo_endpoint = USERINFO }) }
        end
        return 200, { good_claims() }
      end
      script_init()
    end)

    it("asks the discovered endpoint", function()
      local code = auth_password_verify(helper.request(), helper.TOKEN)

      assert.equal(dovecot.auth.PASSDB_RESULT_OK, code)
      assert.equal(WELL_KNOWN, network.requests[1].url)
      assert.equal(USERINFO, network.requests[2].url)
    end)

    it("keeps the document between logins", function()
      auth_password_verify(helper.request(), helper.TOKEN)
      -- Another token, because the token cache would accept the same one without a request.
      auth_password_verify(helper.request(), "second-spec-token.Lp3Vx8")

      assert.equal(3, #network.requests)
      assert.equal(USERINFO, network.requests[3].url)
    end)

    it("fails before the first fetch", function()
      discovery_status = 503
      local req = helper.request()

      local code, reason = auth_password_verify(req, helper.TOKEN)

      assert.equal(dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, code)
      assert.equal("OpenID discovery failed: HTTP 503 from idp.example.test:443", reason)
      helper.assert_no_secrets(req.lines, reason)
    end)
  end)

  it("rejects a body over max_response_bytes", function()
    write_settings({ "max_response_bytes = 1024" })
    script_init()
    reply = function()
      return 200, { '{"email":"alice@example.test","padding":"', string.rep("x", 1100), '"}' }
    end

    local code, reason = auth_password_verify(helper.request(), helper.TOKEN)

    assert.equal(dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, code)
    assert.contains_text(reason, "response body larger than 1024 bytes")
  end)
end)

describe("entry account sources", function()
  local LDAP_URI = "ldap://127.0.0.1:3389"
  local LDAP_BASE = "ou=people,dc=example,dc=test"
  local ALICE_DN = "uid=alice," .. LDAP_BASE
  local LOCATION = LDAP_URI .. " (" .. LDAP_BASE .. ")"

  local settings_path
  local restore_environment
  local restore_lualdap
  local lualdap
  local disabled

  local function ldap_settings(extra)
    local lines = {
      "introspection_url = " .. helper.USERINFO_URL,
      "account_source = ldap",
      "ldap_uris = " .. LDAP_URI,
      "ldap_base = " .. LDAP_BASE,
      "ldap_bind_dn = cn=dovecot,dc=example,dc=test",
      "ldap_bind_password = " .. helper.LDAP_PASSWORD,
      "ldap_user_filter = (mail=%u)",
      "ldap_disabled_filter = (mailEnabled=FALSE)",
    }
    for _, line in ipairs(extra or {}) do
      lines[#lines + 1] = line
    end
    helper.rewrite(settings_path, table.concat(lines, "\n") .. "\n")
  end

  before_each(function()
    settings_path = helper.temp_file("")
    restore_environment = set_settings_variable(settings_path)
    disabled = false
    lualdap = helper.fake_lualdap()
    lualdap.reply = function(request)
      if request.filter == "(objectClass=*)" then
        return request.base == LDAP_BASE and { LDAP_BASE } or {}
      end
      if request.filter == "(mailEnabled=FALSE)" then
        return disabled and { request.base } or {}
      end
      return request.filter == "(mail=alice@example.test)" and { ALICE_DN } or {}
    end
    restore_lualdap = helper.install_lualdap(lualdap)
    helper.load_bridge_with_network(helper.fake_network(function(request)
      local email = request.headers.authorization == "Bearer " .. helper.TOKEN and USER or "frank@example.test"
      return 200, { cjson.encode({ email = email }) }
    end))
  end)

  after_each(function()
    restore_lualdap()
    restore_environment()
    helper.remove_temp_files()
  end)

  local function init_error()
    local ok, problem = pcall(script_init)

    assert.is_false(ok, "script_init returned instead of raising")
    return problem
  end

  it("returns OK for an LDAP mailbox", function()
    ldap_settings()
    script_init()

    local code = auth_password_verify(helper.request(), helper.TOKEN)

    assert.equal(dovecot.auth.PASSDB_RESULT_OK, code)
  end)

  it("returns USER_DISABLED for a disabled mailbox", function()
    ldap_settings()
    script_init()
    disabled = true
    local req = helper.request()

    local results = table.pack(auth_password_verify(req, helper.TOKEN))

    assert.equal(2, results.n)
    assert.equal(dovecot.auth.PASSDB_RESULT_USER_DISABLED, results[1])
    assert.equal("Mailbox is disabled in " .. LOCATION, results[2])
  end)

  it("logs the disabled reason at info level", function()
    ldap_settings()
    script_init()
    disabled = true
    local req = helper.request()

    local _, reason = auth_password_verify(req, helper.TOKEN)

    assert.same({ reason }, helper.messages(req.lines, "info"))
  end)

  it("returns USER_UNKNOWN naming LDAP", function()
    ldap_settings()
    script_init()
    lualdap.reply = function()
      return {}
    end

    local code, reason = auth_password_verify(helper.request(), helper.TOKEN)

    assert.equal(dovecot.auth.PASSDB_RESULT_USER_UNKNOWN, code)
    assert.equal("No mailbox for the login name in " .. LOCATION, reason)
  end)

  it("returns INTERNAL_FAILURE for two entries", function()
    ldap_settings()
    script_init()
    lualdap.reply = function()
      return { ALICE_DN, "uid=alice2," .. LDAP_BASE }
    end

    local code, reason = auth_password_verify(helper.request(), helper.TOKEN)

    assert.equal(dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, code)
    assert.contains_text(reason, "more than one entry")
  end)

  it("checks ldap_base in script_init", function()
    ldap_settings({})
    lualdap.reply = function()
      return {}
    end

    local problem = init_error()

    assert.equal(
      "oauth2-bridge: account_source = ldap: ldap_base " .. LDAP_BASE
        .. " was not found, or ldap_bind_dn may not read it. Check the account settings",
      problem
    )
  end)

  it("names the URI in script_init", function()
    ldap_settings()
    lualdap.open = function()
      return "LuaLDAP: Invalid credentials"
    end

    local problem = init_error()

    assert.contains_text(problem, LDAP_URI .. ": LuaLDAP: Invalid credentials")
    helper.assert_no_secrets({}, problem)
  end)

  it("reads a passwd-file source", function()
    local users = helper.temp_file("alice@example.test:{PLAIN}x:1000:1000::/home/alice::\n")
    helper.rewrite(settings_path, helper.config_text(users, {
      "introspection_url = " .. helper.USERINFO_URL,
      "account_source = passwd-file",
    }))
    script_init()

    local code = auth_password_verify(helper.request(), helper.TOKEN)

    assert.equal(dovecot.auth.PASSDB_RESULT_OK, code)
    assert.equal(0, #lualdap.opens)
  end)

  it("names the passwd-file when unknown", function()
    local users = helper.temp_file("bob@example.test:{PLAIN}x\n")
    helper.rewrite(settings_path, helper.config_text(users, {
      "introspection_url = " .. helper.USERINFO_URL,
      "account_source = passwd-file",
    }))
    script_init()

    local code, reason = auth_password_verify(helper.request(), helper.TOKEN)

    assert.equal(dovecot.auth.PASSDB_RESULT_USER_UNKNOWN, code)
    assert.equal("No mailbox for the login name in " .. users, reason)
  end)
end)

describe("entry over a real socket", function()
  local restore_environment
  local port

  before_each(function()
    local probe = assert(socket.bind("127.0.0.1", 0))
    port = select(2, probe:getsockname())
    probe:close()

    local account_path = helper.accounts_file({ USER })
    local settings_path = helper.temp_file(table.concat({
      ("introspection_url = http://127.0.0.1:%d/userinfo"):format(port),
      "account_file = " .. account_path,
      "timeout_msecs = 2000",
    }, "\n"))
    restore_environment = set_settings_variable(settings_path)
    helper.load_bridge()
    script_init()
  end)

  after_each(function()
    restore_environment()
    helper.remove_temp_files()
  end)

  it("fails on a closed port", function()
    local req = helper.request()

    local code, reason = auth_password_verify(req, helper.TOKEN)

    assert.equal(dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, code)
    assert.contains_text(reason, "connection refused")
    assert.contains_text(reason, "127.0.0.1:" .. port)
    helper.assert_no_secrets(req.lines, reason)
  end)
end)

describe("entry in a child process", function()
  local account_path
  local script_path

  -- Runs script_init in a fresh lua5.4 process whose environment sets OAUTH2_BRIDGE_CONFIG.
  local function run_script_init(settings_path)
    local command = ("%s=%s lua5.4 %s 2>&1"):format(VARIABLE, shell_quote(settings_path), shell_quote(script_path))
    local pipe = assert(io.popen(command, "r"))
    local output = pipe:read("a")
    pipe:close()
    return output
  end

  before_each(function()
    account_path = helper.accounts_file({ USER })
    script_path = helper.temp_file(table.concat({
      "dovecot = { auth = { PASSDB_RESULT_OK = 1, PASSDB_RESULT_INTERNAL_FAILURE = -1 } }",
      ("dofile(%q)"):format(helper.BUNDLE),
      "local ok, result = pcall(script_init)",
      'io.write(tostring(ok), "\\n", tostring(result), "\\n")',
    }, "\n"))
  end)

  after_each(function()
    helper.remove_temp_files()
  end)

  it("reads settings from variable", function()
    local settings_path = helper.temp_file(helper.settings_text(account_path))

    local output = run_script_init(settings_path)

    assert.equal("true\n0\n", output)
  end)

  it("reports bad key in child", function()
    local settings_path = helper.temp_file(helper.settings_text(account_path, { "username_format = mailbox" }))

    local output = run_script_init(settings_path)

    assert.contains_text(output, "false\n")
    assert.contains_text(output, "username_format")
    assert.contains_text(output, settings_path)
  end)
end)
