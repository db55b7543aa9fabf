-- The files shipped in dovecot/ are parsed here, so they cannot drift from the settings parser.

local helper = require("spec.unit.helper")

local EXAMPLE = "dovecot/oauth2-bridge.conf.example"

local read = helper.read_file
local run_setup = helper.run_setup

describe("dovecot/oauth2-bridge.conf.example", function()
  local config

  before_each(function()
    config = helper.load_bridge().config
  end)

  after_each(helper.remove_temp_files)

  it("parses with an existing account file", function()
    local accounts = helper.accounts_file({ helper.USER })
    local text = read(EXAMPLE):gsub("#account_file = [^\n]*", "account_file = " .. accounts)

    local settings = config.parseSettings(text, EXAMPLE)

    assert.equal("https", settings.introspection_url.scheme)
    assert.equal("email", settings.username_attribute)
    assert.equal(accounts, settings.account_file)
  end)

  it("documents every known key", function()
    local text = read(EXAMPLE)

    local missing = {}
    for key in pairs(config.KEYS) do
      if text:find("\n#?" .. key .. " =") == nil then
        missing[#missing + 1] = key
      end
    end
    table.sort(missing)

    assert.same({}, missing)
  end)

  -- Uncomments every key of the example for which `selected(key)` returns true.
  local function uncomment(text, selected)
    return (text:gsub("\n#([%w_]+) =", function(key)
      if selected(key) then
        return "\n" .. key .. " ="
      end
      return nil
    end))
  end

  local function is_ldap_key(key)
    return key:match("^ldap_") ~= nil
  end

  it("parses with file source keys uncommented", function()
    local accounts = helper.accounts_file({ helper.USER })
    local text = uncomment(read(EXAMPLE), function(key)
      return not is_ldap_key(key)
    end)
      :gsub("account_file = [^\n]*", "account_file = " .. accounts)
      :gsub("tls_ca_cert_file = [^\n]*", "tls_ca_cert_file = " .. accounts)

    local settings = config.parseSettings(text, EXAMPLE)

    assert.equal(5000, settings.timeout_msecs)
    assert.equal(65536, settings.max_response_bytes)
    assert.is_false(settings.tls_allow_invalid_cert)
    assert.equal("auth", settings.introspection_mode)
    assert.equal("https", settings.tokeninfo_url.scheme)
    assert.is_false(settings.force_introspection)
    assert.equal("https", settings.openid_configuration_url.scheme)
    assert.equal(3600, settings.discovery_refresh_secs)
    assert.equal("client_secret_basic", settings.client_auth_method)
    assert.equal("any", settings.scope_match)
    assert.equal(30, settings.clock_skew_secs)
    assert.is_false(settings.require_email_verified)
    assert.equal("postfix-accounts", settings.account_source)
  end)

  it("parses with LDAP keys uncommented", function()
    local password_file = helper.temp_file(helper.LDAP_PASSWORD .. "\n")
    local text = uncomment(read(EXAMPLE), is_ldap_key)
      :gsub("\n#account_source = [^\n]*", "\naccount_source = ldap")
      :gsub("ldap_bind_password_file = [^\n]*", "ldap_bind_password_file = " .. password_file)

    local settings = config.parseSettings(text, EXAMPLE)

    assert.equal("ldap", settings.account_source)
    assert.equal(1, #settings.ldap_uris)
    assert.is_string(settings.ldap_base)
    assert.is_string(settings.ldap_bind_dn)
    assert.equal(helper.LDAP_PASSWORD, settings.ldap_bind_password)
    assert.equal("(&(mail=%u)(mailEnabled=TRUE))", settings.ldap_user_filter)
    assert.equal("subtree", settings.ldap_scope)
    assert.is_false(settings.ldap_starttls)
  end)

  it("shows each default value", function()
    local text = read(EXAMPLE)

    local wrong = {}
    for key, spec in pairs(config.KEYS) do
      local shown = text:match("\n#?" .. key .. " = ([^\n]*)")
      if spec.defaultValue ~= nil and shown ~= spec.defaultValue then
        wrong[#wrong + 1] = ("%s = %s"):format(key, spec.defaultValue)
      end
    end
    table.sort(wrong)

    assert.same({}, wrong)
  end)

  it("leaves only one key set", function()
    local set = {}
    for key in read(EXAMPLE):gmatch("\n([%w_]+) =") do
      set[#set + 1] = key
    end

    assert.same({ "introspection_url" }, set)
  end)
end)

describe("dovecot/oauth2-bridge-setup.sh", function()
  local config

  before_each(function()
    config = helper.load_bridge().config
  end)

  after_each(helper.remove_temp_files)

  it("writes settings the bridge parses", function()
    local accounts = helper.accounts_file({ helper.USER })

    local ok, text = run_setup({
      ENABLE_OAUTH2 = "1",
      OAUTH2_INTROSPECTION_URL = helper.USERINFO_URL,
      OAUTH2_CLIENT_ID = "roundcube",
      OAUTH2_CLIENT_SECRET = 'se"cr#et',
      OAUTH2_BRIDGE_ACCOUNT_FILE = accounts,
    })
    local settings = config.parseSettings(text, "setup output")

    assert.is_true(ok)
    assert.equal(helper.USERINFO_URL, settings.introspection_url.text)
    assert.equal("roundcube", settings.client_id)
    assert.equal('se"cr#et', settings.client_secret)
    assert.equal(accounts, settings.account_file)
  end)

  it("defaults to mode auth", function()
    local accounts = helper.accounts_file({ helper.USER })

    local _, text = run_setup({
      ENABLE_OAUTH2 = "1",
      OAUTH2_INTROSPECTION_URL = helper.USERINFO_URL,
      OAUTH2_BRIDGE_ACCOUNT_FILE = accounts,
    })
    local settings = config.parseSettings(text, "setup output")

    assert.equal("auth", settings.introspection_mode)
    assert.is_nil(settings.client_id)
  end)

  local modes = {
    { mode = "auth", url = helper.USERINFO_URL },
    { mode = "get", url = "https://idp.example.test/userinfo?access_token=" },
    { mode = "post", url = "https://idp.example.test/introspect" },
  }
  for _, case in ipairs(modes) do
    it(("writes mode %s"):format(case.mode), function()
      local accounts = helper.accounts_file({ helper.USER })

      local ok, text, printed = run_setup({
        ENABLE_OAUTH2 = "1",
        OAUTH2_INTROSPECTION_URL = case.url,
        OAUTH2_INTROSPECTION_MODE = case.mode,
        OAUTH2_CLIENT_ID = "roundcube",
        OAUTH2_CLIENT_SECRET = helper.SPECIAL_SECRET,
        OAUTH2_BRIDGE_ACCOUNT_FILE = accounts,
      })
      local settings = config.parseSettings(text, "setup output")

      assert.is_true(ok)
      assert.equal(case.mode, settings.introspection_mode)
      assert.equal(case.url, settings.introspection_url.text)
      assert.equal("roundcube", settings.client_id)
      assert.equal(helper.SPECIAL_SECRET, settings.client_secret)
      helper.assert_no_secrets({}, printed)
    end)
  end

  it("writes username attribute and CA file", function()
    local accounts = helper.accounts_file({ helper.USER })

    local _, text = run_setup({
      ENABLE_OAUTH2 = "1",
      OAUTH2_INTROSPECTION_URL = helper.USERINFO_URL,
      OAUTH2_USERNAME_ATTRIBUTE = "ext.email",
      OAUTH2_TLS_CA_CERT_FILE = accounts,
      OAUTH2_BRIDGE_ACCOUNT_FILE = accounts,
    })
    local settings = config.parseSettings(text, "setup output")

    assert.equal("ext.email", settings.username_attribute)
    assert.equal(accounts, settings.tls_ca_cert_file)
  end)

  local refused = {
    { name = "post without secret", variables = { OAUTH2_INTROSPECTION_MODE = "post", OAUTH2_CLIENT_ID = "roundcube" }, message = "OAUTH2_INTROSPECTION_MODE=post needs OAUTH2_CLIENT_ID and OAUTH2_CLIENT_SECRET" },
    { name = "post without id", variables = { OAUTH2_INTROSPECTION_MODE = "post", OAUTH2_CLIENT_SECRET = helper.CLIENT_SECRET }, message = "needs OAUTH2_CLIENT_ID and OAUTH2_CLIENT_SECRET" },
    { name = "unknown mode", variables = { OAUTH2_INTROSPECTION_MODE = "jwt", OAUTH2_CLIENT_SECRET = helper.CLIENT_SECRET }, message = "OAUTH2_INTROSPECTION_MODE must be auth, get or post" },
    { name = "secret with line break", variables = { OAUTH2_CLIENT_SECRET = "first\nsecond" }, message = "the value for client_secret contains a line break" },
  }
  for _, case in ipairs(refused) do
    it(("fails for %s"):format(case.name), function()
      local variables = { ENABLE_OAUTH2 = "1", OAUTH2_INTROSPECTION_URL = "https://idp.example.test/introspect" }
      for name, value in pairs(case.variables) do
        variables[name] = value
      end

      local ok, text, printed = run_setup(variables)

      assert.is_falsy(ok)
      assert.is_nil(text)
      assert.contains_text(printed, case.message)
      helper.assert_no_secrets({}, printed)
    end)
  end

  it("writes nothing without ENABLE_OAUTH2", function()
    local ok, text = run_setup({ OAUTH2_INTROSPECTION_URL = helper.USERINFO_URL })

    assert.is_true(ok)
    assert.is_nil(text)
  end)

  it("fails without OAUTH2_INTROSPECTION_URL", function()
    local ok, text = run_setup({ ENABLE_OAUTH2 = "1" })

    assert.is_falsy(ok)
    assert.is_nil(text)
  end)
end)
