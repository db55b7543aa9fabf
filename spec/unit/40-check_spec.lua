-- The check command (lua-out/oauth2-check.lua), run in process with a fake environment: fake
-- HTTP transport, fake standard input and recorded output. A few cases run the bundle as a
-- script, to cover its command line and exit codes.

local helper = require("spec.unit.helper")

local CHECK_BUNDLE = "lua-out/oauth2-check.lua"
local USER = helper.USER
local DOCUMENT_URL = "https://idp.example.test/.well-known/openid-configuration"
local INTROSPECTION_URL = "https://idp.example.test/introspect"

local function load_check()
  return dofile(CHECK_BUNDLE)
end

--- Returns a fake CheckEnvironment. `transport` is a helper.transport; `stdin` what standard
--- input holds. Output goes to `env.stdout()` and `env.stderr()`.
local function environment(transport, stdin)
  local out, err = {}, {}
  local env = {
    write = function(text)
      out[#out + 1] = text
    end,
    writeError = function(text)
      err[#err + 1] = text
    end,
    readStandardInput = function()
      return stdin
    end,
    standardInputIsTerminal = function()
      return false
    end,
    getenv = function()
      return nil
    end,
    transport = transport and transport.send or function()
      error("no transport expected")
    end,
    closeConnections = function() end,
    now = function()
      return helper.NOW
    end,
  }
  function env.stdout()
    return table.concat(out)
  end
  function env.stderr()
    return table.concat(err)
  end
  return env
end

local function rejected(status)
  return helper.json_response({ error = "invalid_token" }, status or 401)
end

-- Returns the path of a settings file with a userinfo URL, an account file that lists USER, and
-- `extra` lines.
local function settings_file(extra)
  return helper.temp_file(helper.settings_text(helper.accounts_file({ USER }), extra))
end

local function assert_no_secrets(env)
  helper.assert_no_secrets({}, env.stdout(), env.stderr())
end

after_each(helper.remove_temp_files)

describe("check parseArguments", function()
  local check

  before_each(function()
    check = load_check()
  end)

  it("reads options before the command", function()
    local parsed = check.parseArguments({ "--config", "/srv/a.conf", "check" })

    assert.is_true(parsed.ok)
    assert.equal("check", parsed.options.command)
    assert.equal("/srv/a.conf", parsed.options.config)
  end)

  it("reads options after the command", function()
    local parsed = check.parseArguments({ "test", "--user", USER, "--token-file", "/root/token" })

    assert.is_true(parsed.ok)
    assert.equal("test", parsed.options.command)
    assert.equal(USER, parsed.options.user)
    assert.equal("/root/token", parsed.options.tokenFile)
  end)

  it("reads --name=value", function()
    local parsed = check.parseArguments({ "--config=/srv/a.conf", "check" })

    assert.is_true(parsed.ok)
    assert.equal("/srv/a.conf", parsed.options.config)
  end)

  it("rejects a repeated option", function()
    local parsed = check.parseArguments({ "--user", "a", "--user", "b", "test" })

    assert.is_false(parsed.ok)
    assert.equal("--user is given twice", parsed.error)
  end)

  it("rejects a missing value", function()
    local parsed = check.parseArguments({ "test", "--user" })

    assert.is_false(parsed.ok)
    assert.equal("--user needs a value", parsed.error)
  end)

  it("rejects an unknown option", function()
    local parsed = check.parseArguments({ "check", "--verbose" })

    assert.is_false(parsed.ok)
    assert.equal("unknown option --verbose", parsed.error)
  end)

  it("rejects a second command", function()
    local parsed = check.parseArguments({ "check", "test" })

    assert.is_false(parsed.ok)
    assert.contains_text(parsed.error, 'unexpected argument "test"')
  end)

  for _, option in ipairs({ "--token", "--access-token", "--password", "--client-secret" }) do
    it("rejects " .. option, function()
      local parsed = check.parseArguments({ "test", option, helper.TOKEN })

      assert.is_false(parsed.ok)
      assert.contains_text(parsed.error, option .. " is not supported")
      assert.is_not.contains_text(parsed.error, helper.TOKEN)
    end)
  end

  it("rejects --token=value", function()
    local parsed = check.parseArguments({ "test", "--token=" .. helper.TOKEN })

    assert.is_false(parsed.ok)
    assert.is_not.contains_text(parsed.error, helper.TOKEN)
  end)
end)

describe("check run", function()
  local check

  before_each(function()
    check = load_check()
  end)

  it("prints help", function()
    local env = environment()

    local code = check.run({ "--help" }, env)

    assert.equal(0, code)
    assert.equal(check.USAGE, env.stdout())
  end)

  it("lists every option in help", function()
    for _, option in ipairs({ "--config PATH", "--user NAME", "--token-file FILE", "-h, --help" }) do
      assert.contains_text(check.USAGE, option)
    end
  end)

  it("lists every exit code in help", function()
    for name, code in pairs(check.EXIT_CODES) do
      assert.is_truthy(check.USAGE:find("\n  " .. code .. "  ", 1, true), name)
    end
  end)

  it("has distinct exit codes", function()
    assert.same({ ok = 0, refused = 1, usage = 2, temporary = 3 }, check.EXIT_CODES)
  end)

  it("needs a command", function()
    local env = environment()

    local code = check.run({}, env)

    assert.equal(2, code)
    assert.contains_text(env.stderr(), "no command given")
    assert.equal("", env.stdout())
  end)

  it("rejects an unknown command", function()
    local env = environment()

    local code = check.run({ "verify" }, env)

    assert.equal(2, code)
    assert.contains_text(env.stderr(), "unknown command verify")
  end)

  it("rejects --user with check", function()
    local env = environment()

    local code = check.run({ "check", "--user", USER }, env)

    assert.equal(2, code)
    assert.contains_text(env.stderr(), "--user and --token-file belong to the test command")
  end)

  it("uses OAUTH2_BRIDGE_CONFIG", function()
    local env = environment()
    local path = helper.temp_path()
    env.getenv = function(name)
      if name == "OAUTH2_BRIDGE_CONFIG" then
        return path
      end
      return nil
    end

    local code = check.run({ "check" }, env)

    assert.equal(2, code)
    assert.contains_text(env.stdout(), "cannot read the settings file: " .. path)
  end)

  it("defaults to /etc/dovecot/oauth2-bridge.conf", function()
    local env = environment()

    check.run({ "check" }, env)

    assert.contains_text(env.stdout(), "/etc/dovecot/oauth2-bridge.conf")
  end)
end)

describe("check command", function()
  local check

  before_each(function()
    check = load_check()
  end)

  it("passes against a userinfo endpoint", function()
    local transport = helper.transport(rejected(401))
    local env = environment(transport)
    local path = settings_file()

    local code = check.run({ "--config", path, "check" }, env)

    assert.equal(0, code)
    assert.contains_text(env.stdout(), "OK      settings: " .. path .. " is valid\n")
    assert.contains_text(env.stdout(), "OK      accounts (postfix-accounts): ")
    assert.contains_text(env.stdout(), ": 1 account\n")
    assert.contains_text(env.stdout(), "OK      introspection_url: " .. helper.USERINFO_URL .. " answers: a made-up token is rejected")
    assert.contains_text(env.stdout(), "All 3 checks passed.\n")
    assert_no_secrets(env)
  end)

  it("sends a made-up bearer token", function()
    local transport = helper.transport(rejected(401))

    check.run({ "--config", settings_file(), "check" }, environment(transport))

    assert.equal(1, #transport.calls)
    assert.equal("GET", transport.calls[1].method)
    assert.equal("Bearer " .. check.MADE_UP_TOKEN, transport.calls[1].headers.authorization)
  end)

  it("fails on a refused connection", function()
    local env = environment(helper.transport({ ok = false, error = "connection refused" }))

    local code = check.run({ "--config", settings_file(), "check" }, env)

    assert.equal(1, code)
    assert.contains_text(env.stdout(), "FAILED  introspection_url: Userinfo request failed: connection refused (idp.example.test:443)\n")
    assert.contains_text(env.stdout(), "1 of 3 checks FAILED.\n")
  end)

  it("fails on HTTP 404", function()
    local env = environment(helper.transport(rejected(404)))

    local code = check.run({ "--config", settings_file(), "check" }, env)

    assert.equal(1, code)
    assert.contains_text(env.stdout(), "FAILED  introspection_url: Userinfo request failed: HTTP 404 from idp.example.test:443\n")
  end)

  it("fails when a made-up token is accepted", function()
    local env = environment(helper.transport(helper.fixture_response("authentik.userinfo")))

    local code = check.run({ "--config", settings_file(), "check" }, env)

    assert.equal(1, code)
    assert.contains_text(env.stdout(), "accepted a made-up token")
  end)

  it("stops at invalid settings", function()
    local transport = helper.transport(rejected(401))
    local env = environment(transport)
    local path = helper.temp_file("introspection_url = " .. helper.USERINFO_URL .. "\nscope_match = most\n")

    local code = check.run({ "--config", path, "check" }, env)

    assert.equal(2, code)
    assert.contains_text(env.stdout(), "FAILED  settings: oauth2-bridge: " .. path .. ': scope_match = "most" is not supported')
    assert.contains_text(env.stdout(), "Dovecot's auth process would not start")
    assert.equal(0, #transport.calls)
  end)

  it("fails on an empty account file", function()
    local env = environment(helper.transport(rejected(401)))
    local path = helper.temp_file(helper.settings_text(helper.temp_file("")))

    local code = check.run({ "--config", path, "check" }, env)

    assert.equal(1, code)
    assert.contains_text(env.stdout(), "lists no mailbox, so every token login would get USER_UNKNOWN")
  end)

  it("reports malformed account lines", function()
    local env = environment(helper.transport(rejected(401)))
    local accounts = helper.temp_file(USER .. "|hash\nnot an account\n")
    local path = helper.temp_file(helper.settings_text(accounts))

    check.run({ "--config", path, "check" }, env)

    assert.contains_text(env.stdout(), accounts .. ": 1 account (skipped malformed lines 2)\n")
  end)

  it("probes the tokeninfo URL", function()
    local transport = helper.transport(rejected(400))
    local env = environment(transport)
    local path = helper.temp_file(helper.config_text(helper.accounts_file({ USER }), {
      "tokeninfo_url = https://idp.example.test/tokeninfo?access_token=",
    }))

    local code = check.run({ "--config", path, "check" }, env)

    assert.equal(0, code)
    assert.contains_text(env.stdout(), "OK      tokeninfo_url: https://idp.example.test/tokeninfo?access_token= answers")
    assert.equal("https://idp.example.test/tokeninfo?access_token=" .. check.MADE_UP_TOKEN, transport.calls[1].url.text)
  end)

  it("resolves discovery", function()
    local transport = helper.transport(helper.routes({
      [DOCUMENT_URL] = helper.json_response({
        issuer = "https://idp.example.test",
        userinfo_endpoint = "https://idp.example.test/userinfo",
      }),
      ["https://idp.example.test/userinfo"] = rejected(401),
    }))
    local env = environment(transport)
    local path = helper.temp_file(helper.config_text(helper.accounts_file({ USER }), {
      "openid_configuration_url = https://idp.example.test",
    }))

    local code = check.run({ "--config", path, "check" }, env)

    assert.equal(0, code)
    assert.contains_text(env.stdout(), "OK      discovery: " .. DOCUMENT_URL .. ": userinfo_endpoint is https://idp.example.test/userinfo\n")
    assert.contains_text(env.stdout(), "OK      userinfo_endpoint: https://idp.example.test/userinfo answers")
  end)

  it("fails on a document without the endpoint", function()
    local transport = helper.transport(helper.json_response({ issuer = "https://idp.example.test" }))
    local env = environment(transport)
    local path = helper.temp_file(helper.config_text(helper.accounts_file({ USER }), {
      "openid_configuration_url = https://idp.example.test",
    }))

    local code = check.run({ "--config", path, "check" }, env)

    assert.equal(1, code)
    assert.contains_text(env.stdout(), "FAILED  discovery: " .. DOCUMENT_URL .. " has no userinfo_endpoint")
    assert.equal(1, #transport.calls)
  end)

  it("skips discovery beside introspection_url", function()
    local transport = helper.transport(rejected(401))
    local env = environment(transport)
    local path = settings_file({ "openid_configuration_url = https://idp.example.test" })

    local code = check.run({ "--config", path, "check" }, env)

    assert.equal(0, code)
    assert.contains_text(env.stdout(), "openid_configuration_url is not used, because introspection_url is set")
    assert.equal(1, #transport.calls)
  end)

  it("accepts introspection credentials", function()
    local transport = helper.transport(helper.fixture_response("authentik.introspection-inactive"))
    local env = environment(transport)
    local path = helper.temp_file(helper.config_text(helper.accounts_file({ USER }), {
      "introspection_url = " .. INTROSPECTION_URL,
      "introspection_mode = post",
      "client_id = dovecot",
      "client_secret = " .. helper.CLIENT_SECRET,
    }))

    local code = check.run({ "--config", path, "check" }, env)

    assert.equal(0, code)
    assert.contains_text(env.stdout(), "client credentials accepted, and a made-up token is reported inactive")
    assert.equal("POST", transport.calls[1].method)
    assert_no_secrets(env)
  end)

  it("fails on rejected credentials", function()
    local env = environment(helper.transport(rejected(401)))
    local path = helper.temp_file(helper.config_text(helper.accounts_file({ USER }), {
      "introspection_url = " .. INTROSPECTION_URL,
      "introspection_mode = post",
      "client_id = dovecot",
      "client_secret = " .. helper.CLIENT_SECRET,
    }))

    local code = check.run({ "--config", path, "check" }, env)

    assert.equal(1, code)
    assert.contains_text(env.stdout(), "Check client_id and client_secret")
    assert_no_secrets(env)
  end)

  it("hides a secret in a transport error", function()
    local env = environment(helper.transport({ ok = false, error = "echo " .. helper.CLIENT_SECRET }))

    check.run({ "--config", settings_file(), "check" }, env)

    assert.contains_text(env.stdout(), "echo (hidden)")
    assert_no_secrets(env)
  end)
end)

describe("check command with LDAP", function()
  local check
  local fake
  local restore

  local function ldap_settings()
    return helper.temp_file(table.concat({
      "introspection_url = " .. helper.USERINFO_URL,
      "account_source = ldap",
      "ldap_uris = ldap://127.0.0.1:3389",
      "ldap_base = ou=people,dc=example,dc=test",
      "ldap_bind_dn = cn=dovecot,dc=example,dc=test",
      "ldap_bind_password = " .. helper.LDAP_PASSWORD,
    }, "\n") .. "\n")
  end

  before_each(function()
    check = load_check()
    fake = helper.fake_lualdap()
    restore = helper.install_lualdap(fake)
  end)

  after_each(function()
    restore()
  end)

  it("passes when the base is found", function()
    fake.reply = function(request)
      if request.scope == "base" then
        return { "ou=people,dc=example,dc=test" }
      end
      return {}
    end
    local env = environment(helper.transport(rejected(401)))

    local code = check.run({ "--config", ldap_settings(), "check" }, env)

    assert.equal(0, code)
    assert.contains_text(env.stdout(), "OK      accounts (ldap): ldap://127.0.0.1:3389 (ou=people,dc=example,dc=test): bound as cn=dovecot,dc=example,dc=test")
    assert_no_secrets(env)
  end)

  it("fails when no server answers", function()
    fake.open = function()
      return "LuaLDAP: Can't contact LDAP server"
    end
    local env = environment(helper.transport(rejected(401)))

    local code = check.run({ "--config", ldap_settings(), "check" }, env)

    assert.equal(1, code)
    assert.contains_text(env.stdout(), "FAILED  accounts (ldap): oauth2-bridge: account_source = ldap: cannot connect:")
    assert.contains_text(env.stdout(), "Token logins fail temporarily until the LDAP server answers")
  end)

  it("keeps the dovecot global", function()
    local before = dovecot
    fake.open = function()
      return "LuaLDAP: Can't contact LDAP server"
    end

    check.run({ "--config", ldap_settings(), "check" }, environment(helper.transport(rejected(401))))

    assert.equal(before, dovecot)
  end)

  it("stops when the base is missing", function()
    local env = environment(helper.transport(rejected(401)))

    local code = check.run({ "--config", ldap_settings(), "check" }, env)

    assert.equal(2, code)
    assert.contains_text(env.stdout(), "ldap_base ou=people,dc=example,dc=test was not found")
    assert.contains_text(env.stdout(), "Dovecot's auth process would not start")
  end)
end)

describe("test command", function()
  local check

  before_each(function()
    check = load_check()
  end)

  local function run_test(response, options)
    options = options or {}
    local transport = helper.transport(response)
    local env = environment(transport, options.stdin == nil and helper.TOKEN or options.stdin)
    local args = { "--config", options.path or settings_file(options.extra), "test", "--user", options.user or USER }
    for _, argument in ipairs(options.args or {}) do
      args[#args + 1] = argument
    end
    local code = check.run(args, env)
    assert_no_secrets(env)
    return code, env.stdout(), env.stderr(), transport
  end

  it("accepts a matching token", function()
    local code, out = run_test(helper.fixture_response("authentik.userinfo"))

    assert.equal(0, code)
    assert.contains_text(out, "user:     " .. USER .. "\n")
    assert.contains_text(out, "result:   OK\n")
    assert.contains_text(out, "reason:   Token accepted\n")
  end)

  it("lists claim names", function()
    local _, out = run_test(helper.fixture_response("authentik.userinfo"))

    assert.contains_text(out, "claims:   userinfo from idp.example.test:443: email, email_verified, given_name, groups, name, nickname, preferred_username, sub\n")
  end)

  it("shows the identity claim", function()
    local _, out = run_test(helper.fixture_response("authentik.userinfo"))

    assert.contains_text(out, 'identity: email = "alice@example.test", login name alice@example.test\n')
  end)

  it("hides other claim values", function()
    local _, out = run_test(helper.fixture_response("authentik.userinfo"))

    assert.is_not.contains_text(out, "Alice Example")
    assert.is_not.contains_text(out, "5f3c0a1e9b2d")
  end)

  it("sends the token read from standard input", function()
    local _, _, _, transport = run_test(helper.fixture_response("authentik.userinfo"))

    assert.equal("Bearer " .. helper.TOKEN, transport.calls[1].headers.authorization)
  end)

  it("strips Bearer and whitespace", function()
    local _, _, _, transport = run_test(helper.fixture_response("authentik.userinfo"), {
      stdin = "  Bearer " .. helper.TOKEN .. "\r\n",
    })

    assert.equal("Bearer " .. helper.TOKEN, transport.calls[1].headers.authorization)
  end)

  it("reads the token file", function()
    local token_file = helper.temp_file(helper.TOKEN .. "\n")

    local code, _, _, transport = run_test(helper.fixture_response("authentik.userinfo"), {
      stdin = "",
      args = { "--token-file", token_file },
    })

    assert.equal(0, code)
    assert.equal("Bearer " .. helper.TOKEN, transport.calls[1].headers.authorization)
  end)

  it("rejects a missing token file", function()
    local code, out, err = run_test(helper.fixture_response("authentik.userinfo"), {
      args = { "--token-file", helper.temp_path() },
    })

    assert.equal(2, code)
    assert.equal("", out)
    assert.contains_text(err, "cannot read the token file")
  end)

  it("rejects empty standard input", function()
    local code, _, err = run_test(helper.fixture_response("authentik.userinfo"), { stdin = " \n" })

    assert.equal(2, code)
    assert.contains_text(err, "no token in standard input")
  end)

  it("rejects two words", function()
    local code, _, err = run_test(helper.fixture_response("authentik.userinfo"), {
      stdin = helper.TOKEN .. " " .. helper.TOKEN,
    })

    assert.equal(2, code)
    assert.contains_text(err, "standard input contains more than one word")
  end)

  it("reports another user's token", function()
    local code, out = run_test(helper.fixture_response("authentik.userinfo"), { user = "bob@example.test" })

    assert.equal(1, code)
    assert.contains_text(out, "result:   PASSWORD_MISMATCH\n")
    assert.contains_text(out, "reason:   Token belongs to alice@example.test (claim email), not to the login name\n")
  end)

  it("reports a user without mailbox", function()
    local path = helper.temp_file(helper.settings_text(helper.accounts_file({ "bob@example.test" })))

    local code, out = run_test(helper.fixture_response("authentik.userinfo"), { path = path })

    assert.equal(1, code)
    assert.contains_text(out, "result:   USER_UNKNOWN\n")
  end)

  it("reports a rejected token", function()
    local code, out = run_test(rejected(401))

    assert.equal(1, code)
    assert.contains_text(out, "result:   PASSWORD_MISMATCH\n")
    assert.contains_text(out, "claims:   none, because no token endpoint returned a JSON object with HTTP 200\n")
  end)

  it("reports a temporary failure", function()
    local code, out = run_test({ ok = false, error = "timeout" })

    assert.equal(3, code)
    assert.contains_text(out, "result:   INTERNAL_FAILURE\n")
    assert.contains_text(out, "reason:   Userinfo request failed: timeout (idp.example.test:443)\n")
  end)

  it("reports a missing identity claim", function()
    local code, out = run_test(helper.fixture_response("kanidm.introspection"), {
      extra = { "username_attribute = mail" },
    })

    assert.equal(3, code)
    assert.contains_text(out, "identity: claim mail is missing (claims present: ")
  end)

  it("shows the policy claims", function()
    local code, out = run_test(helper.fixture_response("authentik.userinfo"), {
      extra = { "require_email_verified = yes" },
    })

    assert.equal(1, code)
    assert.contains_text(out, "policy:   email_verified = false\n")
    assert.contains_text(out, "reason:   Claim email_verified is not true, and require_email_verified = yes\n")
  end)

  it("shows the expiry", function()
    local _, out = run_test(helper.fixture_response("kanidm.userinfo"))

    assert.contains_text(out, "expiry:   exp = 1767225900, 300 s from now\n")
  end)

  it("shows the passdb fields", function()
    local code, out = run_test(helper.fixture_response("authentik.userinfo"), {
      extra = { "pass_attrs = nopassword=y name=%{oauth2:preferred_username}" },
    })

    assert.equal(0, code)
    assert.contains_text(out, "reason:   Token accepted, passdb fields: name=alice nopassword=y\n")
  end)

  it("prints the log lines", function()
    local _, out = run_test(helper.fixture_response("authentik.userinfo"))

    assert.contains_text(out, "\nlog:\n  debug: Userinfo request: GET https://idp.example.test:443\n")
  end)

  it("never asks the cache", function()
    local path = settings_file({ "cache_ttl_secs = 3600" })
    local transport = helper.transport(helper.fixture_response("authentik.userinfo"))
    local check_run = function()
      check.run({ "--config", path, "test", "--user", USER }, environment(transport, helper.TOKEN))
    end

    check_run()
    check_run()

    assert.equal(2, #transport.calls)
  end)

  it("hides the token in the URL", function()
    local path = helper.temp_file(helper.config_text(helper.accounts_file({ USER }), {
      "tokeninfo_url = https://idp.example.test/tokeninfo?access_token=",
    }))

    local code, out = run_test({ ok = false, error = "failed for /tokeninfo?access_token=" .. helper.TOKEN_FORM }, {
      path = path,
    })

    assert.equal(3, code)
    assert.contains_text(out, "access_token=(hidden)")
  end)

  it("labels tokeninfo and userinfo", function()
    local path = helper.temp_file(helper.config_text(helper.accounts_file({ USER }), {
      "tokeninfo_url = https://idp.example.test/tokeninfo?access_token=",
      "introspection_url = " .. helper.USERINFO_URL,
      "force_introspection = yes",
    }))
    local response = helper.routes({
      ["https://idp.example.test/tokeninfo"] = helper.fixture_response("google.tokeninfo-v3"),
      [helper.USERINFO_URL] = helper.fixture_response("google.userinfo"),
    })

    local code, out = run_test(response, { path = path })

    assert.equal(0, code)
    assert.contains_text(out, "claims:   tokeninfo from idp.example.test:443: ")
    assert.contains_text(out, "claims:   userinfo from idp.example.test:443: ")
  end)
end)

describe("check replacePlain", function()
  it("replaces text with pattern characters", function()
    local check = load_check()

    assert.equal("a(hidden)b(hidden)", check.replacePlain("a%.+[b%.+[", "%.+[", "(hidden)"))
  end)
end)

describe("check script", function()
  local function run_script(arguments)
    local output = helper.temp_path()
    local command = ("lua5.4 %s %s >%s 2>&1"):format(CHECK_BUNDLE, arguments, output)
    local _, _, code = os.execute(command)
    return code, helper.read_file(output)
  end

  it("exits 0 for --help", function()
    local code, output = run_script("--help")

    assert.equal(0, code)
    assert.contains_text(output, "Usage: oauth2-check.lua")
  end)

  it("exits 2 for a usage error", function()
    local code, output = run_script("frobnicate")

    assert.equal(2, code)
    assert.contains_text(output, "unknown command frobnicate")
  end)

  it("exits 2 for a missing settings file", function()
    local code, output = run_script("--config /nonexistent/oauth2-bridge.conf check")

    assert.equal(2, code)
    assert.contains_text(output, "FAILED  settings: oauth2-bridge: cannot read the settings file")
  end)

  it("loads without running", function()
    local check = load_check()

    assert.equal("function", type(check.run))
  end)
end)
