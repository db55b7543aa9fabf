-- Which account settings each account_source needs or forbids, and the LDAP settings that the
-- docker-mailserver setup script writes with ACCOUNT_PROVISIONER=LDAP.

local helper = require("spec.unit.helper")

local ORIGIN = "test.conf"
local URI = "ldap://127.0.0.1:3389"
local BASE = "ou=people,dc=example,dc=test"
local BIND_DN = "cn=dovecot,dc=example,dc=test"

-- Every LDAP key with a valid value. ldap_bind_password_file gets a readable file in the test.
local LDAP_VALUES = {
  { key = "ldap_uris", value = URI },
  { key = "ldap_base", value = BASE },
  { key = "ldap_bind_dn", value = BIND_DN },
  { key = "ldap_bind_password", value = helper.LDAP_PASSWORD },
  { key = "ldap_bind_password_file" },
  { key = "ldap_user_filter", value = "(mail=%u)" },
  { key = "ldap_disabled_filter", value = "(mailEnabled=FALSE)" },
  { key = "ldap_scope", value = "subtree" },
  { key = "ldap_starttls", value = "yes" },
}

describe("config account_source", function()
  local config
  local account_file
  local password_file

  local function parse(lines)
    local all = { "introspection_url = " .. helper.USERINFO_URL }
    for _, line in ipairs(lines) do
      all[#all + 1] = line
    end
    return config.parseSettings(table.concat(all, "\n") .. "\n", ORIGIN)
  end

  -- Returns the lines of a valid LDAP source, with the `extra` lines added or, for a key that
  -- is already there, put in its place.
  local function ldap_lines(extra)
    local lines = { "account_source = ldap", "ldap_uris = " .. URI, "ldap_base = " .. BASE }
    for _, line in ipairs(extra or {}) do
      local key = line:match("^([%w_]+)")
      local replaced = false
      for index, existing in ipairs(lines) do
        if existing:match("^([%w_]+)") == key then
          lines[index] = line
          replaced = true
        end
      end
      if not replaced then
        lines[#lines + 1] = line
      end
    end
    return lines
  end

  before_each(function()
    config = helper.load_bridge().config
    account_file = helper.accounts_file({ helper.USER })
    password_file = helper.temp_file(helper.LDAP_PASSWORD .. "\n")
  end)

  after_each(helper.remove_temp_files)

  it("reads the LDAP settings", function()
    local settings = parse(ldap_lines({
      "ldap_uris = " .. URI .. " ldaps://127.0.0.1:3636",
      "ldap_bind_dn = " .. BIND_DN,
      "ldap_bind_password = " .. helper.LDAP_PASSWORD,
      "ldap_disabled_filter = (mailEnabled=FALSE)",
      "ldap_scope = onelevel",
      "ldap_starttls = yes",
    }))

    assert.equal("ldap", settings.account_source)
    assert.same({ URI, "ldaps://127.0.0.1:3636" }, settings.ldap_uris)
    assert.equal(BASE, settings.ldap_base)
    assert.equal(BIND_DN, settings.ldap_bind_dn)
    assert.equal(helper.LDAP_PASSWORD, settings.ldap_bind_password)
    assert.equal("(mailEnabled=FALSE)", settings.ldap_disabled_filter)
    assert.equal("onelevel", settings.ldap_scope)
    assert.is_true(settings.ldap_starttls)
  end)

  it("applies the LDAP defaults", function()
    local settings = parse(ldap_lines())

    assert.equal("(&(mail=%u)(mailEnabled=TRUE))", settings.ldap_user_filter)
    assert.equal("subtree", settings.ldap_scope)
    assert.is_false(settings.ldap_starttls)
    assert.is_nil(settings.ldap_bind_dn)
    assert.is_nil(settings.ldap_bind_password)
    assert.is_nil(settings.ldap_disabled_filter)
  end)

  it("strips CR from the password file", function()
    helper.rewrite(password_file, helper.LDAP_PASSWORD .. "\r\n")

    local settings = parse(ldap_lines({ "ldap_bind_dn = cn=dovecot,dc=example,dc=test", "ldap_bind_password_file = " .. password_file }))

    assert.equal(helper.LDAP_PASSWORD, settings.ldap_bind_password)
  end)

  it("rejects empty password file", function()
    helper.rewrite(password_file, "")

    local message = helper.error_message(parse, ldap_lines({ "ldap_bind_dn = cn=dovecot,dc=example,dc=test", "ldap_bind_password_file = " .. password_file }))

    assert.contains_text(message, "is empty")
  end)

  it("rejects password without bind DN", function()
    local message = helper.error_message(parse, ldap_lines({ "ldap_bind_password = " .. helper.LDAP_PASSWORD }))

    assert.contains_text(message, "ldap_bind_dn is not")
    assert.is_not.contains_text(message, helper.LDAP_PASSWORD)
  end)

  it("takes the password file's first line", function()
    helper.rewrite(password_file, helper.LDAP_PASSWORD .. "\nsecond line\n")

    local settings = parse(ldap_lines({ "ldap_bind_dn = cn=dovecot,dc=example,dc=test", "ldap_bind_password_file = " .. password_file }))

    assert.equal(helper.LDAP_PASSWORD, settings.ldap_bind_password)
  end)

  for _, case in ipairs(LDAP_VALUES) do
    it(("rejects %s without ldap source"):format(case.key), function()
      local line = ("%s = %s"):format(case.key, case.value or password_file)

      local message = helper.error_message(parse, { "account_file = " .. account_file, line })

      assert.contains_text(message, ORIGIN .. ": " .. case.key .. " is set, but account_source = postfix-accounts")
      assert.contains_text(message, "Set account_source = ldap, or remove " .. case.key)
      helper.assert_no_secrets({}, message)
    end)
  end

  it("accepts every LDAP key with ldap source", function()
    local lines = {}
    for _, case in ipairs(LDAP_VALUES) do
      if case.key ~= "ldap_bind_password" then
        lines[#lines + 1] = ("%s = %s"):format(case.key, case.value or password_file)
      end
    end

    local settings = parse(ldap_lines(lines))

    assert.equal(helper.LDAP_PASSWORD, settings.ldap_bind_password)
  end)

  it("rejects ldap keys for passwd-file", function()
    local message = helper.error_message(parse, {
      "account_source = passwd-file",
      "account_file = " .. account_file,
      "ldap_base = " .. BASE,
    })

    assert.contains_text(message, "ldap_base is set, but account_source = passwd-file")
  end)

  local errors = {
    {
      name = "passwd-file without account_file",
      lines = { "account_source = passwd-file" },
      message = "account_source = passwd-file needs account_file, the path of the passwd-file",
    },
    {
      name = "ldap without ldap_uris",
      lines = { "account_source = ldap", "ldap_base = " .. BASE },
      message = "account_source = ldap needs ldap_uris, e.g. ldap_uris = ldap://",
    },
    {
      name = "ldap without ldap_base",
      lines = { "account_source = ldap", "ldap_uris = " .. URI },
      message = "account_source = ldap needs ldap_base, e.g. ldap_base = ",
    },
    {
      name = "URI with http scheme",
      lines = ldap_lines({ "ldap_uris = http://127.0.0.1:3389" }),
      message = 'ldap_uris contains "http://127.0.0.1:3389", which is not an ldap:// or ldaps:// URI',
    },
    {
      name = "bare host in ldap_uris",
      lines = ldap_lines({ "ldap_uris = 127.0.0.1" }),
      message = 'ldap_uris contains "127.0.0.1", which is not an ldap:// or ldaps:// URI',
    },
    {
      name = "ldapi URI",
      lines = ldap_lines({ "ldap_uris = ldapi:///run/slapd/ldapi" }),
      message = "which is not an ldap:// or ldaps:// URI",
    },
    {
      name = "second URI invalid",
      lines = ldap_lines({ "ldap_uris = " .. URI .. " 127.0.0.1:3389" }),
      message = 'ldap_uris contains "127.0.0.1:3389"',
    },
    {
      name = "URI without host",
      lines = ldap_lines({ "ldap_uris = ldap://" }),
      message = 'ldap_uris contains "ldap://"',
    },
    {
      name = "password and password file",
      lines = function(password_path)
        return ldap_lines({
          "ldap_bind_password = " .. helper.LDAP_PASSWORD,
          "ldap_bind_password_file = " .. password_path,
        })
      end,
      message = "ldap_bind_password and ldap_bind_password_file are both set. Keep one of them",
    },
    {
      name = "unreadable password file",
      lines = function(password_path)
        os.remove(password_path)
        return ldap_lines({ "ldap_bind_password_file = " .. password_path })
      end,
      message = "ldap_bind_password_file",
    },
    {
      name = "user filter without parentheses",
      lines = ldap_lines({ "ldap_user_filter = mail=%u" }),
      message = 'ldap_user_filter = "mail=%u" is not an LDAP filter. Wrap it in parentheses, e.g. (mail=%u)',
    },
    {
      name = "user filter without closing parenthesis",
      lines = ldap_lines({ "ldap_user_filter = (mail=%u" }),
      message = "ldap_user_filter",
    },
    {
      name = "disabled filter without parentheses",
      lines = ldap_lines({ "ldap_disabled_filter = mailEnabled=FALSE" }),
      message = 'ldap_disabled_filter = "mailEnabled=FALSE" is not an LDAP filter',
    },
    {
      name = "user filter without variable",
      lines = ldap_lines({ "ldap_user_filter = (mail=alice@example.test)" }),
      message = "ldap_user_filter contains no %u, %n or %d variable. Use %u for the login name",
    },
    {
      name = "user filter with Postfix %s",
      lines = ldap_lines({ "ldap_user_filter = (mail=%s)" }),
      message = "ldap_user_filter contains the unsupported variable %s",
    },
    {
      -- The disabled filter is sent as written, so a %u in it would reach the server literally,
      -- never match, and let a disabled mailbox log in.
      name = "variable in disabled filter",
      lines = ldap_lines({ "ldap_disabled_filter = (&(mail=%u)(mailEnabled=FALSE))" }),
      message = 'ldap_disabled_filter = "(&(mail=%u)(mailEnabled=FALSE))"',
    },
    {
      name = "unsupported ldap_scope",
      lines = ldap_lines({ "ldap_scope = children" }),
      message = "Use one of: base, onelevel, subtree",
    },
    {
      name = "bad ldap_starttls",
      lines = ldap_lines({ "ldap_starttls = maybe" }),
      message = "ldap_starttls",
    },
  }
  for _, case in ipairs(errors) do
    it(("rejects %s"):format(case.name), function()
      local lines = case.lines
      if type(lines) == "function" then
        lines = lines(password_file)
      end

      local message = helper.error_message(parse, lines)

      assert.contains_text(message, ORIGIN .. ": ")
      assert.contains_text(message, case.message)
      helper.assert_no_secrets({}, message)
    end)
  end

  -- account_file must be readable for the file sources only; the LDAP source never opens it.
  local readability = {
    { source = "postfix-accounts", rejected = true },
    { source = "passwd-file", rejected = true },
    { source = "ldap", rejected = false },
  }
  for _, case in ipairs(readability) do
    local verb = case.rejected and "rejects" or "ignores"
    it(("%s unreadable account_file for %s"):format(verb, case.source), function()
      local lines = case.source == "ldap" and ldap_lines() or { "account_source = " .. case.source }
      lines[#lines + 1] = "account_file = " .. helper.temp_path()

      local ok, problem = pcall(parse, lines)

      assert.equal(not case.rejected, ok)
      if case.rejected then
        assert.contains_text(problem.message, "account_file")
        assert.contains_text(problem.message, "Check the path and its permissions")
      end
    end)
  end

  it("accepts ldap with the default account_file", function()
    local settings = parse(ldap_lines())

    assert.equal("ldap", settings.account_source)
  end)

  it("accepts passwd-file with account_file", function()
    local settings = parse({ "account_source = passwd-file", "account_file = " .. account_file })

    assert.equal("passwd-file", settings.account_source)
    assert.equal(account_file, settings.account_file)
  end)
end)

describe("setup script with ACCOUNT_PROVISIONER=LDAP", function()
  local config

  -- Runs the setup script with the OAuth2 variables, the LDAP provisioner and `variables`.
  local function run(variables)
    local all = {
      ENABLE_OAUTH2 = "1",
      OAUTH2_INTROSPECTION_URL = helper.USERINFO_URL,
      ACCOUNT_PROVISIONER = "LDAP",
      LDAP_SERVER_HOST = URI,
      LDAP_SEARCH_BASE = BASE,
    }
    for name, value in pairs(variables or {}) do
      all[name] = value or nil
    end
    return helper.run_setup(all)
  end

  local function settings_of(variables)
    local ok, text, printed = run(variables)
    assert.is_true(ok, printed)
    return config.parseSettings(text, "setup output"), text, printed
  end

  before_each(function()
    config = helper.load_bridge().config
  end)

  after_each(helper.remove_temp_files)

  it("writes settings the bridge parses", function()
    local settings = settings_of()

    assert.equal("ldap", settings.account_source)
    assert.same({ URI }, settings.ldap_uris)
    assert.equal(BASE, settings.ldap_base)
    assert.equal("(&(mail=%u)(mailEnabled=TRUE))", settings.ldap_user_filter)
    assert.is_false(settings.ldap_starttls)
  end)

  local hosts = {
    { name = "bare host", host = "127.0.0.1", uri = "ldap://127.0.0.1" },
    { name = "bare host with port", host = "127.0.0.1:3389", uri = "ldap://127.0.0.1:3389" },
    { name = "ldap URI", host = "ldap://127.0.0.1:3389", uri = "ldap://127.0.0.1:3389" },
    { name = "ldaps URI", host = "ldaps://127.0.0.1", uri = "ldaps://127.0.0.1" },
  }
  for _, case in ipairs(hosts) do
    it(("maps LDAP_SERVER_HOST as %s"):format(case.name), function()
      local settings = settings_of({ LDAP_SERVER_HOST = case.host })

      assert.same({ case.uri }, settings.ldap_uris)
    end)
  end

  it("writes the bind DN and password", function()
    local settings, _, printed = settings_of({ LDAP_BIND_DN = BIND_DN, LDAP_BIND_PW = helper.LDAP_PASSWORD })

    assert.equal(BIND_DN, settings.ldap_bind_dn)
    assert.equal(helper.LDAP_PASSWORD, settings.ldap_bind_password)
    helper.assert_no_secrets({}, printed)
  end)

  it("binds anonymously without LDAP_BIND_DN", function()
    local settings = settings_of({ LDAP_BIND_PW = helper.LDAP_PASSWORD })

    assert.is_nil(settings.ldap_bind_dn)
    assert.is_nil(settings.ldap_bind_password)
  end)

  local tls = {
    { name = "LDAP_START_TLS=yes", variables = { LDAP_START_TLS = "yes" }, starttls = true },
    { name = "DOVECOT_TLS=yes", variables = { DOVECOT_TLS = "yes" }, starttls = true },
    { name = "LDAP_START_TLS=no", variables = { LDAP_START_TLS = "no" }, starttls = false },
    { name = "DOVECOT_TLS=no", variables = { DOVECOT_TLS = "no" }, starttls = false },
    { name = "neither", variables = {}, starttls = false },
  }
  for _, case in ipairs(tls) do
    it(("maps StartTLS for %s"):format(case.name), function()
      local settings = settings_of(case.variables)

      assert.equal(case.starttls, settings.ldap_starttls)
    end)
  end

  -- Postfix's %s (the address) and %u (its local part) become the bridge's %u and %n.
  local filters = {
    {
      name = "DOVECOT_USER_FILTER",
      variables = { DOVECOT_USER_FILTER = "(&(objectClass=PostfixBookMailAccount)(uniqueIdentifier=%n))" },
      filter = "(&(objectClass=PostfixBookMailAccount)(uniqueIdentifier=%n))",
    },
    {
      name = "DOVECOT_USER_FILTER over Postfix",
      variables = { DOVECOT_USER_FILTER = "(mail=%u)", LDAP_QUERY_FILTER_USER = "(uid=%u)" },
      filter = "(mail=%u)",
    },
    {
      name = "Postfix %s",
      variables = { LDAP_QUERY_FILTER_USER = "(&(mail=%s)(mailEnabled=TRUE))" },
      filter = "(&(mail=%u)(mailEnabled=TRUE))",
    },
    {
      name = "Postfix %u",
      variables = { LDAP_QUERY_FILTER_USER = "(&(uid=%u)(objectClass=inetOrgPerson))" },
      filter = "(&(uid=%n)(objectClass=inetOrgPerson))",
    },
    {
      name = "Postfix %s and %u",
      variables = { LDAP_QUERY_FILTER_USER = "(|(mail=%s)(uid=%u))" },
      filter = "(|(mail=%u)(uid=%n))",
    },
    {
      name = "Postfix %u and %d",
      variables = { LDAP_QUERY_FILTER_USER = "(&(uid=%u)(associatedDomain=%d))" },
      filter = "(&(uid=%n)(associatedDomain=%d))",
    },
  }
  for _, case in ipairs(filters) do
    it(("writes filter from %s"):format(case.name), function()
      local settings = settings_of(case.variables)

      assert.equal(case.filter, settings.ldap_user_filter)
    end)
  end

  it("leaves out account_file", function()
    local _, text = settings_of()

    assert.is_nil(text:find("account_file", 1, true))
  end)

  local incomplete = {
    { name = "LDAP_SERVER_HOST", variables = { LDAP_SERVER_HOST = false } },
    { name = "empty LDAP_SERVER_HOST", variables = { LDAP_SERVER_HOST = "" } },
    { name = "LDAP_SEARCH_BASE", variables = { LDAP_SEARCH_BASE = false } },
  }
  for _, case in ipairs(incomplete) do
    it(("fails without %s"):format(case.name), function()
      local ok, text, printed = run(case.variables)

      assert.is_falsy(ok)
      assert.is_nil(text)
      assert.contains_text(printed, "ACCOUNT_PROVISIONER=LDAP needs LDAP_SERVER_HOST and LDAP_SEARCH_BASE")
    end)
  end

  it("fails for a password with line break", function()
    local ok, text, printed = run({ LDAP_BIND_DN = BIND_DN, LDAP_BIND_PW = helper.LDAP_PASSWORD .. "\nsecond" })

    assert.is_falsy(ok)
    assert.is_nil(text)
    assert.contains_text(printed, "the value for ldap_bind_password contains a line break")
    helper.assert_no_secrets({}, printed)
  end)

  it("writes file settings without LDAP", function()
    local accounts = helper.accounts_file({ helper.USER })

    local settings = settings_of({ ACCOUNT_PROVISIONER = "FILE", OAUTH2_BRIDGE_ACCOUNT_FILE = accounts })

    assert.equal("postfix-accounts", settings.account_source)
    assert.equal(accounts, settings.account_file)
  end)
end)
