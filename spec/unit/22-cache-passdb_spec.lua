-- The token cache as passdb.verifyLogin uses it: which logins reach the identity provider, how
-- long an entry lives, and that the mailbox check runs on every login.

local cjson = require("cjson")
local helper = require("spec.unit.helper")

-- Every log line that a test records must be free of the token and the client secrets.
after_each(helper.assert_logs_clean)

local NOW = helper.NOW
local USER = helper.USER
local BOB = "bob@example.test"

-- A valid RFC 6750 token that differs from helper.TOKEN in one character.
local NEAR_TOKEN = helper.TOKEN:gsub("Qx7", "Qx8")

local function claims(overrides)
  local result = { sub = "5f3c0a1e9b2d", email = USER, email_verified = true, exp = NOW + 3600 }
  for key, value in pairs(overrides or {}) do
    result[key] = value
  end
  return result
end

describe("passdb token cache", function()
  local bundle
  local settings_lines
  local clock
  local response
  local transport
  local accounts
  local mailbox
  local cache
  local logger
  local account_path

  -- Builds the bridge from `settings_lines`, with a cache of `cache_size` entries.
  local function bridge()
    local settings = bundle.config.parseSettings(helper.settings_text(account_path, settings_lines), "test.conf")
    if cache == nil then
      cache = helper.new(bundle.tokenCache.TokenCache, settings.cache_size)
    end
    return helper.context(bundle, settings, nil, transport, {
      accounts = accounts,
      cache = cache,
      now = function()
        return clock
      end,
    })
  end

  local function login(user, token)
    logger = helper.logger()
    return bundle.passdb.verifyLogin(bridge(), user or USER, token or helper.TOKEN, logger)
  end

  local function requests()
    return #transport.calls
  end

  -- Returns every key of both cache generations.
  local function cache_keys()
    local keys = {}
    for _, generation in ipairs({ cache.young, cache.old }) do
      for key in pairs(generation) do
        keys[#keys + 1] = key
      end
    end
    return keys
  end

  before_each(function()
    bundle = helper.load_bridge()
    -- parseSettings checks that account_file exists, though the specs use a fake account source.
    account_path = helper.accounts_file({ USER, BOB })
    settings_lines = {}
    clock = NOW
    cache = nil
    response = helper.json_response(claims())
    transport = helper.transport(function()
      return response
    end)
    mailbox = { status = "found" }
    accounts = helper.account_source(function()
      return mailbox
    end)
  end)

  after_each(function()
    helper.remove_temp_files()
  end)

  describe("accepted tokens", function()
    it("answers the second login from cache", function()
      local first = login()
      local second = login()

      helper.assert_verdict(first, "OK")
      helper.assert_verdict(second, "OK")
      assert.equal(1, requests())
    end)

    it("logs the cache hit", function()
      login()
      login()

      local debug_lines = helper.messages(logger.lines, "debug")
      assert.equal("Token cache hit (accepted)", debug_lines[1])
      assert.equal("Mailbox found in spec account source", debug_lines[2])
      assert.equal(2, #debug_lines)
    end)

    it("checks a changed token again", function()
      login()

      local verdict = login(USER, NEAR_TOKEN)

      helper.assert_verdict(verdict, "OK")
      assert.equal(2, requests())
    end)

    it("shares the entry across name case", function()
      login()

      local verdict = login("Alice@Example.TEST")

      helper.assert_verdict(verdict, "OK")
      assert.equal(1, requests())
    end)

    it("rejects alice's token for bob", function()
      login()

      local verdict = login(BOB)

      helper.assert_verdict(verdict, "PASSWORD_MISMATCH", "Token belongs to alice@example.test")
      assert.equal(2, requests())
    end)

    it("keeps alice's entry after bob's refusal", function()
      login()
      login(BOB)

      local verdict = login()

      helper.assert_verdict(verdict, "OK")
      assert.equal(2, requests())
    end)

    it("returns pass_attrs from the entry", function()
      settings_lines = { "pass_attrs = proxy=y host=%{oauth2:email}" }
      local first = login()

      local second = login()

      assert.same({ proxy = "y", host = USER }, first.fields)
      assert.same({ proxy = "y", host = USER }, second.fields)
      assert.equal(1, requests())
    end)

    it("works while the provider is down", function()
      login()
      response = { ok = false, error = "connection refused" }

      local verdict = login()

      helper.assert_verdict(verdict, "OK")
      assert.equal(1, requests())
    end)
  end)

  describe("entry lifetime", function()
    it("lives until cache_ttl_secs", function()
      settings_lines = { "cache_ttl_secs = 60" }
      login()

      clock = NOW + 59
      login()
      assert.equal(1, requests())

      clock = NOW + 60
      login()
      assert.equal(2, requests())
    end)

    it("ends at the token's exp", function()
      settings_lines = { "cache_ttl_secs = 60" }
      response = helper.json_response(claims({ exp = NOW + 10 }))
      login()

      clock = NOW + 9
      login()
      assert.equal(1, requests())

      clock = NOW + 10
      login()
      assert.equal(2, requests())
    end)

    it("reads exp given as a string", function()
      settings_lines = { "cache_ttl_secs = 60" }
      response = helper.json_response(claims({ exp = tostring(NOW + 10) }))
      login()

      clock = NOW + 10
      login()

      assert.equal(2, requests())
    end)

    it("uses cache_ttl_secs without exp", function()
      settings_lines = { "cache_ttl_secs = 60" }
      response = helper.json_response(claims({ exp = cjson.null }))
      login()

      clock = NOW + 59
      login()
      assert.equal(1, requests())

      clock = NOW + 60
      login()
      assert.equal(2, requests())
    end)

    it("skips a token past its exp", function()
      -- Accepted within clock_skew_secs, but not worth caching.
      response = helper.json_response(claims({ exp = NOW - 5 }))

      helper.assert_verdict(login(), "OK")
      helper.assert_verdict(login(), "OK")

      assert.equal(2, requests())
      assert.equal(0, #cache_keys())
    end)

    it("is refreshed by a new check", function()
      settings_lines = { "cache_ttl_secs = 60" }
      login()
      clock = NOW + 60
      login()

      clock = NOW + 119
      login()

      assert.equal(2, requests())
    end)
  end)

  describe("failures", function()
    local temporary = {
      { name = "transport error", response = { ok = false, error = "connection refused" } },
      { name = "HTTP 500", response = { ok = true, status = 500, body = "" } },
      { name = "HTML body", response = { ok = true, status = 200, body = "<html></html>" } },
      { name = "missing email claim", response = helper.json_response({ sub = "5f3c0a1e9b2d", exp = NOW + 3600 }) },
    }
    for _, case in ipairs(temporary) do
      it("never caches " .. case.name, function()
        settings_lines = { "cache_negative_ttl_secs = 300" }
        response = case.response
        helper.assert_verdict(login(), "INTERNAL_FAILURE")

        response = helper.json_response(claims())
        local verdict = login()

        helper.assert_verdict(verdict, "OK")
        assert.equal(2, requests())
      end)
    end

    it("checks again after a mismatch", function()
      response = { ok = true, status = 401, body = "" }
      helper.assert_verdict(login(), "PASSWORD_MISMATCH")

      response = helper.json_response(claims())
      local verdict = login()

      helper.assert_verdict(verdict, "OK")
      assert.equal(2, requests())
      assert.equal(1, #cache_keys())
    end)

    it("caches a mismatch when configured", function()
      settings_lines = { "cache_negative_ttl_secs = 30" }
      response = { ok = true, status = 401, body = "" }
      login()
      response = helper.json_response(claims())

      clock = NOW + 29
      local verdict = login()

      helper.assert_verdict(verdict, "PASSWORD_MISMATCH", "HTTP 401 from idp.example.test:443 (cached)")
      assert.equal(1, requests())
    end)

    it("ends a mismatch after its ttl", function()
      settings_lines = { "cache_negative_ttl_secs = 30" }
      response = { ok = true, status = 401, body = "" }
      login()
      response = helper.json_response(claims())

      clock = NOW + 30
      local verdict = login()

      helper.assert_verdict(verdict, "OK")
      assert.equal(2, requests())
    end)

    it("ignores cache_ttl_secs for mismatches", function()
      settings_lines = { "cache_negative_ttl_secs = 30", "cache_ttl_secs = 3600" }
      response = { ok = true, status = 401, body = "" }
      login()

      clock = NOW + 30
      login()

      assert.equal(2, requests())
    end)

    it("binds a cached mismatch to the user", function()
      settings_lines = { "cache_negative_ttl_secs = 30" }
      helper.assert_verdict(login(BOB), "PASSWORD_MISMATCH")

      local verdict = login()

      helper.assert_verdict(verdict, "OK")
      assert.equal(2, requests())
    end)

    it("logs a cached mismatch hit", function()
      settings_lines = { "cache_negative_ttl_secs = 30" }
      login(BOB)

      login(BOB)

      assert.same({ "Token cache hit (refused)" }, helper.messages(logger.lines, "debug"))
    end)
  end)

  describe("mailbox check", function()
    it("runs on every cached login", function()
      login()
      login()

      assert.equal(2, #accounts.lookups)
    end)

    it("rejects a removed mailbox", function()
      login()
      mailbox = { status = "missing" }

      local verdict = login()

      helper.assert_verdict(verdict, "USER_UNKNOWN", "No mailbox for the login name")
      assert.equal(1, requests())
    end)

    it("rejects a disabled mailbox", function()
      login()
      mailbox = { status = "disabled" }

      local verdict = login()

      helper.assert_verdict(verdict, "USER_DISABLED")
      assert.equal(1, requests())
    end)

    it("fails when the list is unavailable", function()
      login()
      mailbox = { status = "unavailable", reason = "cannot read the file" }

      local verdict = login()

      helper.assert_verdict(verdict, "INTERNAL_FAILURE", "Account list unavailable")
    end)

    it("keeps the entry of a removed mailbox", function()
      login()
      mailbox = { status = "missing" }
      login()
      mailbox = { status = "found" }

      local verdict = login()

      helper.assert_verdict(verdict, "OK")
      assert.equal(1, requests())
    end)
  end)

  describe("secrets", function()
    it("keeps no token in cache keys", function()
      settings_lines = { "cache_negative_ttl_secs = 30" }
      login()
      login(BOB)

      local keys = cache_keys()

      assert.equal(2, #keys)
      for _, key in ipairs(keys) do
        assert.is_not.contains_text(key, helper.TOKEN)
        assert.is_not.contains_text(key, helper.TOKEN:sub(1, 8))
      end
    end)

    it("keys on name and 16-byte digest", function()
      login()

      local keys = cache_keys()

      assert.equal(1, #keys)
      assert.equal(USER .. "\0", keys[1]:sub(1, #USER + 1))
      assert.equal(#USER + 1 + 16, #keys[1])
    end)

    it("keeps no token in entries", function()
      settings_lines = { "cache_negative_ttl_secs = 30", "pass_attrs = proxy=y" }
      login()
      login(BOB)

      for _, generation in ipairs({ cache.young, cache.old }) do
        for _, stored in pairs(generation) do
          assert.is_not.contains_text(tostring(stored.reason), helper.TOKEN)
          for _, value in pairs(stored.fields or {}) do
            assert.is_not.contains_text(value, helper.TOKEN)
          end
        end
      end
    end)

    it("logs no token on a hit", function()
      login()
      local first_lines = logger.lines

      login()

      helper.assert_no_secrets(first_lines)
      helper.assert_no_secrets(logger.lines)
    end)
  end)
end)

describe("token cache settings", function()
  local VARIABLE = "OAUTH2_BRIDGE_CONFIG"
  local network
  local settings_path
  local real_getenv

  -- Loads a bundle behind a fake network, runs script_init with `lines` and logs in with each
  -- token in turn. The identity provider replies with `status` (default 200) and alice's claims.
  -- Returns the number of requests it received.
  local function logins(lines, tokens, status)
    local account_path = helper.accounts_file({ USER })
    helper.rewrite(settings_path, helper.settings_text(account_path, lines))
    network = helper.fake_network(function()
      return status or 200, { cjson.encode(claims({ exp = os.time() + 3600 })) }
    end)
    helper.load_bridge_with_network(network)
    script_init()
    local expected = status == nil and "OK" or "PASSWORD_MISMATCH"
    for _, token in ipairs(tokens) do
      local code, reason = auth_password_verify(helper.request(), token)
      assert.equal(helper.result_code(expected), code, reason)
    end
    return #network.requests
  end

  before_each(function()
    settings_path = helper.temp_file("")
    real_getenv = os.getenv
    os.getenv = function(name)
      if name == VARIABLE then
        return settings_path
      end
      return real_getenv(name)
    end
  end)

  after_each(function()
    os.getenv = real_getenv
    helper.remove_temp_files()
  end)

  it("caches by default", function()
    assert.equal(1, logins({}, { helper.TOKEN, helper.TOKEN }))
  end)

  it("disables the cache at ttl 0", function()
    assert.equal(2, logins({ "cache_ttl_secs = 0" }, { helper.TOKEN, helper.TOKEN }))
  end)

  it("caches a mismatch when configured", function()
    assert.equal(1, logins({ "cache_negative_ttl_secs = 30" }, { helper.TOKEN, helper.TOKEN }, 401))
  end)

  it("caches no mismatch at ttl 0", function()
    local lines = { "cache_ttl_secs = 0", "cache_negative_ttl_secs = 30" }

    assert.equal(2, logins(lines, { helper.TOKEN, helper.TOKEN }, 401))
  end)

  it("evicts past twice cache_size", function()
    local tokens = { "token-a.Vd2", "token-b.Vd2", "token-c.Vd2", "token-d.Vd2", "token-e.Vd2", "token-a.Vd2" }

    assert.equal(6, logins({ "cache_size = 2" }, tokens))
  end)

  it("keeps the cache_size latest tokens", function()
    local tokens = { "token-a.Vd2", "token-b.Vd2", "token-c.Vd2", "token-b.Vd2", "token-c.Vd2" }

    assert.equal(3, logins({ "cache_size = 2" }, tokens))
  end)

  it("keeps tokens within cache_size", function()
    local tokens = { "token-a.Vd2", "token-b.Vd2", "token-c.Vd2", "token-a.Vd2" }

    assert.equal(3, logins({ "cache_size = 4" }, tokens))
  end)
end)
