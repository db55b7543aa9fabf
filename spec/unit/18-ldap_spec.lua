-- The LDAP account source, against a fake lualdap module that records each bind and search and
-- returns scripted results.

local helper = require("spec.unit.helper")

-- Every log line that a test records must be free of the token and the secrets.
after_each(helper.assert_logs_clean)

local URI = "ldap://127.0.0.1:3389"
local SECOND_URI = "ldaps://127.0.0.1:3636"
local BASE = "ou=people,dc=example,dc=test"
local BIND_DN = "cn=dovecot,dc=example,dc=test"
local ALICE_DN = "uid=alice," .. BASE
local UNREACHABLE = "LuaLDAP: Can't contact LDAP server"
local RESULT_ERROR = "LuaLDAP: result error"

-- Returns settings text for the LDAP source. An override of false leaves the key out.
local function settings_text(overrides)
  local values = {
    introspection_url = helper.USERINFO_URL,
    account_source = "ldap",
    ldap_uris = URI,
    ldap_base = BASE,
    ldap_bind_dn = BIND_DN,
    ldap_bind_password = helper.LDAP_PASSWORD,
    ldap_user_filter = "(mail=%u)",
  }
  for key, value in pairs(overrides or {}) do
    values[key] = value
  end
  local lines = {}
  for key, value in pairs(values) do
    if value then
      lines[#lines + 1] = ("%s = %s"):format(key, value)
    end
  end
  table.sort(lines)
  return table.concat(lines, "\n") .. "\n"
end

describe("ldap escapeFilterValue", function()
  local ldap

  before_each(function()
    ldap = helper.load_bridge().ldapAccounts
  end)

  -- RFC 4515 section 3 requires these five to be escaped as a backslash and two hex digits.
  local cases = {
    { name = "asterisk", value = "*", escaped = "\\2a" },
    { name = "left parenthesis", value = "(", escaped = "\\28" },
    { name = "right parenthesis", value = ")", escaped = "\\29" },
    { name = "backslash", value = "\\", escaped = "\\5c" },
    { name = "NUL", value = "\0", escaped = "\\00" },
    { name = "all five in a name", value = "a*b(c)d\\e\0f", escaped = "a\\2ab\\28c\\29d\\5ce\\00f" },
    { name = "escaped-looking text", value = "\\2a", escaped = "\\5c2a" },
    { name = "plain address", value = "alice@example.test", escaped = "alice@example.test" },
    { name = "other filter characters", value = "=~<>&|!:", escaped = "=~<>&|!:" },
    { name = "UTF-8 letters", value = "jürgen@bücher.example", escaped = "jürgen@bücher.example" },
    { name = "empty value", value = "", escaped = "" },
  }
  for _, case in ipairs(cases) do
    it(("escapes %s"):format(case.name), function()
      assert.equal(case.escaped, ldap.escapeFilterValue(case.value))
    end)
  end
end)

describe("ldap expandFilter", function()
  local ldap

  before_each(function()
    ldap = helper.load_bridge().ldapAccounts
  end)

  local cases = {
    { name = "%u", template = "(mail=%u)", value = "alice@example.test", filter = "(mail=alice@example.test)" },
    { name = "%n", template = "(uid=%n)", value = "alice@example.test", filter = "(uid=alice)" },
    { name = "%d", template = "(dc=%d)", value = "alice@example.test", filter = "(dc=example.test)" },
    { name = "%n and %d", template = "(&(uid=%n)(dc=%d))", value = "alice@example.test", filter = "(&(uid=alice)(dc=example.test))" },
    { name = "%Lu", template = "(mail=%Lu)", value = "Alice@Example.TEST", filter = "(mail=alice@example.test)" },
    { name = "%u keeping case", template = "(mail=%u)", value = "Alice@Example.TEST", filter = "(mail=Alice@Example.TEST)" },
    { name = "%Ln and %Ld", template = "(&(uid=%Ln)(dc=%Ld))", value = "Alice@Example.TEST", filter = "(&(uid=alice)(dc=example.test))" },
    { name = "%%", template = "(&(mail=%u)(note=100%%))", value = "alice@example.test", filter = "(&(mail=alice@example.test)(note=100%))" },
    { name = "%n of two at signs", template = "(&(uid=%n)(dc=%d))", value = "a@b@example.test", filter = "(&(uid=a@b)(dc=example.test))" },
    { name = "%n without at sign", template = "(&(uid=%n)(dc=%d))", value = "alice", filter = "(&(uid=alice)(dc=))" },
    { name = "%u with metacharacters", template = "(mail=%u)", value = "*)(uid=*", filter = "(mail=\\2a\\29\\28uid=\\2a)" },
    { name = "%n with metacharacters", template = "(uid=%n)", value = "a*(b)\\@example.test", filter = "(uid=a\\2a\\28b\\29\\5c)" },
    { name = "%d with metacharacters", template = "(dc=%d)", value = "a@x)(y", filter = "(dc=x\\29\\28y)" },
    { name = "%Lu with metacharacters", template = "(mail=%Lu)", value = "A*B@X", filter = "(mail=a\\2ab@x)" },
    { name = "%u with NUL", template = "(mail=%u)", value = "nul\0@example.test", filter = "(mail=nul\\00@example.test)" },
  }
  for _, case in ipairs(cases) do
    it(("expands %s"):format(case.name), function()
      local filter, problem = ldap.expandFilter(case.template, case.value)

      assert.equal(case.filter, filter)
      assert.is_nil(problem)
    end)
  end

  local invalid = {
    { name = "no variable", template = "(mail=alice@example.test)", problem = "contains no %u, %n or %d variable" },
    { name = "Postfix %s", template = "(mail=%s)", problem = "contains the unsupported variable %s" },
    { name = "%L alone", template = "(mail=%L)", problem = "contains the unsupported variable %L)" },
  }
  for _, case in ipairs(invalid) do
    it(("rejects template with %s"):format(case.name), function()
      local filter, problem = ldap.expandFilter(case.template, helper.USER)

      assert.is_nil(filter)
      assert.equal(case.problem, problem)
    end)
  end
end)

describe("ldap lookup", function()
  local bundle
  local lualdap
  local restore_lualdap
  local logger
  local directory
  local disabled_dns

  local function new_source(overrides)
    local settings = bundle.config.parseSettings(settings_text(overrides), "test.conf")
    return helper.new(bundle.ldapAccounts.LdapAccounts, settings)
  end

  -- Makes the next search return `results` (a list, as fake.reply returns) or raise `raised`.
  local function script_next_search(results, raised)
    local normal = lualdap.reply
    lualdap.reply = function(request, connection)
      lualdap.reply = normal
      if raised ~= nil then
        error(raised, 0)
      end
      return results
    end
  end

  before_each(function()
    lualdap = helper.fake_lualdap()
    restore_lualdap = helper.install_lualdap(lualdap)
    bundle = helper.load_bridge()
    logger = helper.logger()
    directory = { ["(mail=alice@example.test)"] = { ALICE_DN } }
    disabled_dns = {}
    lualdap.reply = function(request)
      if request.filter == "(objectClass=*)" then
        return request.base == BASE and { BASE } or {}
      end
      if request.scope == "base" then
        return disabled_dns[request.base] and { request.base } or {}
      end
      return directory[request.filter] or {}
    end
  end)

  after_each(function()
    restore_lualdap()
    helper.remove_temp_files()
  end)

  it("finds one entry", function()
    local source = new_source()

    assert.same({ status = "found" }, source:lookup(helper.USER, logger))
  end)

  it("logs the found DN at debug level", function()
    local source = new_source()

    source:lookup(helper.USER, logger)

    assert.same({ "LDAP entry found: " .. ALICE_DN }, helper.messages(logger.lines, "debug"))
  end)

  it("reports no entry as missing", function()
    local source = new_source()

    assert.same({ status = "missing" }, source:lookup("bob@example.test", logger))
  end)

  it("reports two entries as unavailable", function()
    directory["(mail=alice@example.test)"] = { ALICE_DN, "uid=alice2," .. BASE }
    local source = new_source()

    local result = source:lookup(helper.USER, logger)

    assert.equal("unavailable", result.status)
    assert.equal("LDAP search found more than one entry for the login name", result.reason)
  end)

  it("sends the search request", function()
    local source = new_source()

    source:lookup(helper.USER, logger)

    assert.same({
      connection = 1,
      base = BASE,
      scope = "subtree",
      filter = "(mail=alice@example.test)",
      attrs = { "1.1" },
      sizelimit = 2,
    }, lualdap.searches[1])
  end)

  local scopes = { "base", "onelevel", "subtree" }
  for _, scope in ipairs(scopes) do
    it(("searches with scope %s"):format(scope), function()
      local source = new_source({ ldap_scope = scope })

      source:lookup(helper.USER, logger)

      assert.equal(scope, lualdap.searches[1].scope)
    end)
  end

  -- The login name is lowered and then escaped, so it can never add a filter component.
  local names = {
    { name = "alice@example.test", filter = "(mail=alice@example.test)" },
    { name = "ALICE@Example.TEST", filter = "(mail=alice@example.test)" },
    { name = "*", filter = "(mail=\\2a)" },
    { name = "*@example.test", filter = "(mail=\\2a@example.test)" },
    { name = "alice@example.test)(objectClass=*", filter = "(mail=alice@example.test\\29\\28objectclass=\\2a)" },
    { name = "Eve*)(|(uid=*@example.test", filter = "(mail=eve\\2a\\29\\28|\\28uid=\\2a@example.test)" },
    { name = "back\\slash@example.test", filter = "(mail=back\\5cslash@example.test)" },
    { name = "nul\0@example.test", filter = "(mail=nul\\00@example.test)" },
    { name = "100%u%%@example.test", filter = "(mail=100%u%%@example.test)" },
  }
  for _, case in ipairs(names) do
    it(("sends escaped filter for %q"):format(case.name), function()
      local source = new_source()

      source:lookup(case.name, logger)

      assert.equal(case.filter, lualdap.searches[1].filter)
    end)
  end

  it("escapes inside the default filter", function()
    local source = new_source({ ldap_user_filter = false })

    source:lookup("x*)(mailEnabled=TRUE@example.test", logger)

    assert.equal("(&(mail=x\\2a\\29\\28mailenabled=true@example.test)(mailEnabled=TRUE))", lualdap.searches[1].filter)
  end)

  it("expands %n and %d in the filter", function()
    local source = new_source({ ldap_user_filter = "(&(uid=%n)(associatedDomain=%d))" })

    source:lookup("Alice*@Example.TEST", logger)

    assert.equal("(&(uid=alice\\2a)(associatedDomain=example.test))", lualdap.searches[1].filter)
  end)

  describe("with ldap_disabled_filter", function()
    local source

    before_each(function()
      source = new_source({ ldap_disabled_filter = "(mailEnabled=FALSE)" })
    end)

    it("reports a matching entry as disabled", function()
      disabled_dns[ALICE_DN] = true

      assert.same({ status = "disabled" }, source:lookup(helper.USER, logger))
    end)

    it("reports another entry as found", function()
      assert.same({ status = "found" }, source:lookup(helper.USER, logger))
    end)

    it("searches the found DN with scope base", function()
      source:lookup(helper.USER, logger)

      assert.same({
        connection = 1,
        base = ALICE_DN,
        scope = "base",
        filter = "(mailEnabled=FALSE)",
        attrs = { "1.1" },
        sizelimit = 2,
      }, lualdap.searches[2])
    end)

    it("skips the second search when missing", function()
      source:lookup("bob@example.test", logger)

      assert.equal(1, #lualdap.searches)
    end)

    it("reports a failed second search as unavailable", function()
      lualdap.reply = function(request)
        if request.scope == "base" then
          return { { error = RESULT_ERROR } }
        end
        return { ALICE_DN }
      end

      local result = source:lookup(helper.USER, logger)

      assert.equal("unavailable", result.status)
      assert.equal("LDAP search failed: " .. RESULT_ERROR, result.reason)
    end)
  end)

  it("searches once without ldap_disabled_filter", function()
    local source = new_source()

    source:lookup(helper.USER, logger)

    assert.equal(1, #lualdap.searches)
  end)

  it("asks for at most one attribute", function()
    local source = new_source({ ldap_disabled_filter = "(mailEnabled=FALSE)" })

    source:check()
    source:lookup(helper.USER, logger)

    assert.equal(4, #lualdap.searches)
    for _, search in ipairs(lualdap.searches) do
      assert.same({ "1.1" }, search.attrs)
    end
  end)

  it("keeps one connection across lookups", function()
    local source = new_source()

    source:lookup(helper.USER, logger)
    source:lookup("bob@example.test", logger)
    source:lookup(helper.USER, logger)

    assert.equal(1, #lualdap.opens)
    assert.is_false(lualdap.connections[1].closed)
  end)

  describe("search failures", function()
    local failures = {
      { name = "iterator error", results = { { error = RESULT_ERROR } }, reason = "LDAP search failed: " .. RESULT_ERROR },
      { name = "error after an entry", results = { ALICE_DN, { error = RESULT_ERROR } }, reason = "LDAP search failed: " .. RESULT_ERROR },
      { name = "raised error", raised = "LuaLDAP: LDAP connection is closed", reason = "LDAP search failed: LuaLDAP: LDAP connection is closed" },
    }
    for _, case in ipairs(failures) do
      it(("reports %s as unavailable"):format(case.name), function()
        local source = new_source()
        script_next_search(case.results, case.raised)

        local result = source:lookup(helper.USER, logger)

        assert.equal("unavailable", result.status)
        assert.equal(case.reason, result.reason)
      end)

      it(("drops connection after %s"):format(case.name), function()
        local source = new_source()
        script_next_search(case.results, case.raised)

        source:lookup(helper.USER, logger)

        assert.is_true(lualdap.connections[1].closed)
      end)

      it(("reconnects after %s"):format(case.name), function()
        local source = new_source()
        script_next_search(case.results, case.raised)
        source:lookup(helper.USER, logger)

        local result = source:lookup(helper.USER, logger)

        assert.same({ status = "found" }, result)
        assert.equal(2, #lualdap.opens)
        assert.equal(2, lualdap.searches[2].connection)
      end)

      it(("retries %s on kept connection"):format(case.name), function()
        local source = new_source()
        source:lookup(helper.USER, logger)
        script_next_search(case.results, case.raised)

        local result = source:lookup(helper.USER, logger)

        assert.same({ status = "found" }, result)
        assert.equal(2, #lualdap.opens)
        assert.equal(1, lualdap.searches[2].connection)
        assert.equal(2, lualdap.searches[3].connection)
        assert.is_true(lualdap.connections[1].closed)
      end)
    end

    it("skips retry on a new connection", function()
      local source = new_source()
      script_next_search({ { error = RESULT_ERROR } })

      source:lookup(helper.USER, logger)

      assert.equal(1, #lualdap.searches)
      assert.equal(1, #lualdap.opens)
    end)

    it("logs the retry at info level", function()
      local source = new_source()
      source:lookup(helper.USER, logger)
      script_next_search({ { error = RESULT_ERROR } })

      source:lookup(helper.USER, logger)

      assert.same(
        { "LDAP search failed on the kept connection (" .. RESULT_ERROR .. "), reconnecting" },
        helper.messages(logger.lines, "info")
      )
    end)

    it("retries only once", function()
      local source = new_source()
      source:lookup(helper.USER, logger)
      lualdap.reply = function()
        return { { error = RESULT_ERROR } }
      end

      local result = source:lookup(helper.USER, logger)

      assert.equal("unavailable", result.status)
      assert.equal(3, #lualdap.searches)
      assert.equal(2, #lualdap.opens)
    end)

    it("retries after check on kept connection", function()
      local source = new_source()
      assert.is_nil(source:check())
      script_next_search({ { error = RESULT_ERROR } })

      local result = source:lookup(helper.USER, logger)

      assert.same({ status = "found" }, result)
      assert.equal(2, #lualdap.opens)
    end)
  end)

  describe("connecting", function()
    it("binds with the configured credentials", function()
      local source = new_source()

      source:lookup(helper.USER, logger)

      assert.same({ uri = URI, who = BIND_DN, password = helper.LDAP_PASSWORD, starttls = false }, lualdap.opens[1])
    end)

    it("binds anonymously without ldap_bind_dn", function()
      local source = new_source({ ldap_bind_dn = false, ldap_bind_password = false })

      source:lookup(helper.USER, logger)

      assert.is_nil(lualdap.opens[1].who)
      assert.is_nil(lualdap.opens[1].password)
    end)

    it("asks for StartTLS with ldap_starttls", function()
      local source = new_source({ ldap_starttls = "yes" })

      source:lookup(helper.USER, logger)

      assert.is_true(lualdap.opens[1].starttls)
    end)

    it("reads the password file's first line", function()
      local path = helper.temp_file(helper.LDAP_PASSWORD .. "\nsecond line\n")
      local source = new_source({ ldap_bind_password = false, ldap_bind_password_file = path })

      source:lookup(helper.USER, logger)

      assert.equal(helper.LDAP_PASSWORD, lualdap.opens[1].password)
    end)

    it("reads a password file without newline", function()
      local path = helper.temp_file(helper.LDAP_PASSWORD)
      local source = new_source({ ldap_bind_password = false, ldap_bind_password_file = path })

      source:lookup(helper.USER, logger)

      assert.equal(helper.LDAP_PASSWORD, lualdap.opens[1].password)
    end)

    it("falls back to the second URI", function()
      lualdap.open = function(uri)
        if uri == URI then
          return UNREACHABLE
        end
        return nil
      end
      local source = new_source({ ldap_uris = URI .. " " .. SECOND_URI })

      local result = source:lookup(helper.USER, logger)

      assert.same({ status = "found" }, result)
      assert.equal(URI, lualdap.opens[1].uri)
      assert.equal(SECOND_URI, lualdap.opens[2].uri)
      assert.equal(SECOND_URI, lualdap.connections[1].uri)
    end)

    it("keeps the second URI's connection", function()
      lualdap.open = function(uri)
        if uri == URI then
          return UNREACHABLE
        end
        return nil
      end
      local source = new_source({ ldap_uris = URI .. " " .. SECOND_URI })

      source:lookup(helper.USER, logger)
      source:lookup(helper.USER, logger)

      assert.equal(2, #lualdap.opens)
    end)

    it("names each URI when all fail", function()
      lualdap.open = function(uri)
        return uri == URI and UNREACHABLE or "LuaLDAP: Invalid credentials"
      end
      local source = new_source({ ldap_uris = URI .. " " .. SECOND_URI })

      local result = source:lookup(helper.USER, logger)

      assert.equal("unavailable", result.status)
      assert.contains_text(result.reason, "cannot connect: ")
      assert.contains_text(result.reason, URI .. ": " .. UNREACHABLE)
      assert.contains_text(result.reason, SECOND_URI .. ": LuaLDAP: Invalid credentials")
    end)

    it("tries every URI again on the next lookup", function()
      lualdap.open = function()
        return UNREACHABLE
      end
      local source = new_source({ ldap_uris = URI .. " " .. SECOND_URI })
      source:lookup(helper.USER, logger)
      lualdap.open = function()
        return nil
      end

      local result = source:lookup(helper.USER, logger)

      assert.same({ status = "found" }, result)
      assert.equal(3, #lualdap.opens)
    end)

    it("reports a raising open_simple", function()
      lualdap.open = function()
        error("LuaLDAP: error binding to server", 0)
      end
      local source = new_source()

      local result = source:lookup(helper.USER, logger)

      assert.equal("unavailable", result.status)
      assert.contains_text(result.reason, URI .. ": LuaLDAP: error binding to server")
    end)
  end)

  describe("check", function()
    it("passes when the base entry exists", function()
      local source = new_source()

      assert.is_nil(source:check())
    end)

    it("reads the base entry itself", function()
      local source = new_source()

      source:check()

      assert.same({
        connection = 1,
        base = BASE,
        scope = "base",
        filter = "(objectClass=*)",
        attrs = { "1.1" },
        sizelimit = 2,
      }, lualdap.searches[1])
    end)

    it("fails when the base is not found", function()
      local source = new_source({ ldap_base = "ou=nobody,dc=example,dc=test" })

      local problem = source:check()

      assert.equal("ldap_base ou=nobody,dc=example,dc=test was not found, or ldap_bind_dn may not read it", problem)
    end)

    it("only warns when no server answers", function()
      lualdap.open = function()
        return UNREACHABLE
      end
      local source = new_source()
      local logged = #helper.process_log

      local problem = source:check()

      assert.is_nil(problem)
      assert.equal(logged + 1, #helper.process_log)
      assert.equal("warning", helper.process_log[#helper.process_log].level)
      assert.contains_text(helper.process_log[#helper.process_log].message, UNREACHABLE)
    end)

    it("fails when the bind is refused", function()
      lualdap.open = function()
        return "Invalid credentials"
      end
      local source = new_source()

      local problem = source:check()

      assert.equal("cannot connect: " .. URI .. ": Invalid credentials", problem)
    end)

    it("fails when the search fails", function()
      script_next_search({ { error = RESULT_ERROR } })
      local source = new_source()

      local problem = source:check()

      assert.equal(RESULT_ERROR, problem)
    end)

    it("keeps the connection for lookups", function()
      local source = new_source()

      source:check()
      source:lookup(helper.USER, logger)

      assert.equal(1, #lualdap.opens)
    end)
  end)

  describe("bind password", function()
    -- Each case makes a lookup or check fail in another way; no reason, problem or log line
    -- may contain the bind password.
    local failures = {
      { name = "no server", setup = function() lualdap.open = function() return "LuaLDAP: Invalid credentials" end end },
      { name = "raising bind", setup = function() lualdap.open = function() error("LuaLDAP: error binding to server", 0) end end },
      { name = "search error", setup = function() lualdap.reply = function() return { { error = RESULT_ERROR } } end end },
      { name = "raising search", setup = function() lualdap.reply = function() error("LuaLDAP: bad filter", 0) end end },
      { name = "two entries", setup = function() lualdap.reply = function() return { ALICE_DN, BASE } end end },
    }
    for _, case in ipairs(failures) do
      it(("stays hidden after %s"):format(case.name), function()
        case.setup()
        local source = new_source({ ldap_disabled_filter = "(mailEnabled=FALSE)" })

        local problem = source:check()
        local first = source:lookup(helper.USER, logger)
        local second = source:lookup(helper.USER, logger)

        helper.assert_no_secrets(logger.lines, problem, first.reason, second.reason, source.location)
      end)
    end

    it("stays out of the location", function()
      local source = new_source()

      assert.equal(URI .. " (" .. BASE .. ")", source.location)
    end)
  end)
end)

describe("ldap module loading", function()
  local loads
  local previous_loaded
  local previous_preload
  local lualdap

  before_each(function()
    loads = 0
    lualdap = helper.fake_lualdap()
    lualdap.reply = function()
      return { ALICE_DN }
    end
    previous_loaded = package.loaded["lualdap"]
    previous_preload = package.preload["lualdap"]
    package.loaded["lualdap"] = nil
    package.preload["lualdap"] = function()
      loads = loads + 1
      return lualdap
    end
  end)

  after_each(function()
    package.loaded["lualdap"] = previous_loaded
    package.preload["lualdap"] = previous_preload
    helper.remove_temp_files()
  end)

  it("skips lualdap for file sources", function()
    local bundle = helper.load_bridge()
    local file = helper.new(bundle.accounts.PostfixAccountsFile, helper.accounts_file({ helper.USER }))

    file:check()
    file:lookup(helper.USER, helper.logger())

    assert.equal(0, loads)
  end)

  it("loads lualdap on first lookup", function()
    local bundle = helper.load_bridge()
    local settings = bundle.config.parseSettings(settings_text(), "test.conf")
    local source = helper.new(bundle.ldapAccounts.LdapAccounts, settings)
    local before = loads

    source:lookup(helper.USER, helper.logger())
    source:lookup(helper.USER, helper.logger())

    assert.equal(0, before)
    assert.equal(1, loads)
  end)
end)
