local helper = require("spec.unit.helper")

local ORIGIN = "test.conf"

describe("config.parseSettings values", function()
  local config
  local account_file

  local function parse(extra)
    return config.parseSettings(helper.settings_text(account_file, extra), ORIGIN)
  end

  before_each(function()
    config = helper.load_bridge().config
    account_file = helper.accounts_file({ helper.USER })
  end)

  after_each(function()
    helper.remove_temp_files()
  end)

  it("applies the documented defaults", function()
    local settings = parse()

    assert.equal("auth", settings.introspection_mode)
    assert.equal("email", settings.username_attribute)
    assert.equal("%Lu", settings.username_format)
    assert.is_false(settings.tls_allow_invalid_cert)
    assert.equal(5000, settings.timeout_msecs)
    assert.equal(65536, settings.max_response_bytes)
    assert.equal("postfix-accounts", settings.account_source)
    assert.is_nil(settings.tls_ca_cert_file)
  end)

  it("applies validation key defaults", function()
    local settings = parse()

    assert.is_nil(settings.tokeninfo_url)
    assert.is_false(settings.force_introspection)
    assert.is_nil(settings.openid_configuration_url)
    assert.equal(3600, settings.discovery_refresh_secs)
    assert.equal("client_secret_basic", settings.client_auth_method)
    assert.is_nil(settings.active_attribute)
    assert.is_nil(settings.active_value)
    assert.same({}, settings.scope)
    assert.equal("any", settings.scope_match)
    assert.same({}, settings.audience)
    assert.same({}, settings.issuers)
    assert.is_false(settings.require_email_verified)
    assert.equal(30, settings.clock_skew_secs)
    assert.same({}, settings.pass_attrs)
  end)

  local lists = {
    { key = "scope", text = "mail openid", value = { "mail", "openid" } },
    { key = "scope", text = "  mail\topenid   email ", value = { "mail", "openid", "email" } },
    { key = "audience", text = "roundcube", value = { "roundcube" } },
    { key = "issuers", text = "https://a.example.test https://b.example.test/", value = { "https://a.example.test", "https://b.example.test/" } },
  }
  for _, case in ipairs(lists) do
    it(("reads list %s = %s"):format(case.key, case.text), function()
      local settings = parse({ case.key .. " = " .. case.text })

      assert.same(case.value, settings[case.key])
    end)
  end

  it("reads pass_attrs pairs", function()
    local settings = parse({ "pass_attrs = proxy=y host=%{oauth2:mail_host} quota=50%% nopassword=" })

    assert.same({
      { name = "proxy", template = "y" },
      { name = "host", template = "%{oauth2:mail_host}" },
      { name = "quota", template = "50%%" },
      { name = "nopassword", template = "" },
    }, settings.pass_attrs)
  end)

  it("reads the validation keys", function()
    local settings = parse({
      "introspection_mode = post",
      "client_auth_method = client_secret_post",
      "tokeninfo_url = https://idp.example.test/tokeninfo?access_token=",
      "force_introspection = yes",
      "scope_match = all",
      "require_email_verified = yes",
      "clock_skew_secs = 0",
      "discovery_refresh_secs = 60",
      "active_attribute = status",
      "active_value = enabled",
    })

    assert.equal("post", settings.introspection_mode)
    assert.equal("client_secret_post", settings.client_auth_method)
    assert.equal("https://idp.example.test/tokeninfo?access_token=", settings.tokeninfo_url.text)
    assert.is_true(settings.force_introspection)
    assert.equal("all", settings.scope_match)
    assert.is_true(settings.require_email_verified)
    assert.equal(0, settings.clock_skew_secs)
    assert.equal(60, settings.discovery_refresh_secs)
    assert.equal("status", settings.active_attribute)
    assert.equal("enabled", settings.active_value)
  end)

  it("defaults account_file to docker-mailserver's path", function()
    assert.equal("/tmp/docker-mailserver/postfix-accounts.cf", config.KEYS.account_file.defaultValue)
  end)

  it("keeps the string settings as written", function()
    local settings = parse({ "username_attribute = mail" })

    assert.equal("mail", settings.username_attribute)
    assert.equal(account_file, settings.account_file)
    assert.equal("roundcube", settings.client_id)
    assert.equal(helper.CLIENT_SECRET, settings.client_secret)
  end)

  local booleans = {
    { text = "yes", value = true },
    { text = "no", value = false },
    { text = "true", value = true },
    { text = "false", value = false },
    { text = "YES", value = true },
    { text = "False", value = false },
  }
  for _, case in ipairs(booleans) do
    it(("reads boolean %s"):format(case.text), function()
      local settings = parse({ "tls_allow_invalid_cert = " .. case.text })

      assert.equal(case.value, settings.tls_allow_invalid_cert)
    end)
  end

  local integers = {
    { key = "timeout_msecs", text = "1", value = 1 },
    { key = "timeout_msecs", text = "600000", value = 600000 },
    { key = "timeout_msecs", text = "0250", value = 250 },
    { key = "max_response_bytes", text = "1024", value = 1024 },
    { key = "max_response_bytes", text = "16777216", value = 16777216 },
  }
  for _, case in ipairs(integers) do
    it(("reads integer %s = %s"):format(case.key, case.text), function()
      local settings = parse({ case.key .. " = " .. case.text })

      assert.equal(case.value, settings[case.key])
      assert.equal(math.type(case.value), math.type(settings[case.key]))
    end)
  end

  local urls = {
    { text = "https://idp.example.test/userinfo", scheme = "https", host = "idp.example.test", port = 443 },
    { text = "http://idp.example.test/userinfo", scheme = "http", host = "idp.example.test", port = 80 },
    { text = "https://idp.example.test:8443/oauth2/userinfo", scheme = "https", host = "idp.example.test", port = 8443 },
    { text = "http://127.0.0.1:9000/userinfo?format=json", scheme = "http", host = "127.0.0.1", port = 9000 },
    { text = "HTTPS://IdP.Example.Test/UserInfo", scheme = "https", host = "idp.example.test", port = 443 },
    { text = "https://[::1]:8443/userinfo", scheme = "https", host = "::1", port = 8443 },
  }
  for _, case in ipairs(urls) do
    it(("parses URL %s"):format(case.text), function()
      local settings = config.parseSettings(
        ("introspection_url = %s\naccount_file = %s\n"):format(case.text, account_file),
        ORIGIN
      )
      local url = settings.introspection_url

      assert.equal(case.text, url.text)
      assert.equal(case.scheme, url.scheme)
      assert.equal(case.host, url.host)
      assert.equal(case.port, url.port)
    end)
  end

  local quotings = {
    { name = "double quotes", line = 'username_attribute = "mail"' },
    { name = "single quotes", line = "username_attribute = 'mail'" },
    { name = "no spaces", line = "username_attribute=mail" },
    { name = "indentation", line = "   username_attribute   =   mail   " },
    { name = "tab separators", line = "username_attribute\t=\tmail" },
  }
  for _, case in ipairs(quotings) do
    it(("reads value with %s"):format(case.name), function()
      local settings = parse({ case.line })

      assert.equal("mail", settings.username_attribute)
    end)
  end

  it("skips comments and blank lines", function()
    local text = table.concat({
      "# OAuth2 bridge settings",
      "",
      "   # an indented comment",
      "introspection_url = " .. helper.USERINFO_URL,
      "   ",
      "#username_attribute = preferred_username",
      "account_file = " .. account_file,
    }, "\n")

    local settings = config.parseSettings(text, ORIGIN)

    assert.equal(helper.USERINFO_URL, settings.introspection_url.text)
    assert.equal("email", settings.username_attribute)
  end)

  it("reads CRLF line endings", function()
    local text = ("introspection_url = %s\r\naccount_file = %s\r\ntimeout_msecs = 750\r\n"):format(
      helper.USERINFO_URL,
      account_file
    )

    local settings = config.parseSettings(text, ORIGIN)

    assert.equal(helper.USERINFO_URL, settings.introspection_url.text)
    assert.equal(account_file, settings.account_file)
    assert.equal(750, settings.timeout_msecs)
  end)

  it("treats an empty value as unset", function()
    local settings = parse({ "username_attribute =", "timeout_msecs = " })

    assert.equal("email", settings.username_attribute)
    assert.equal(5000, settings.timeout_msecs)
  end)

  it("accepts a readable tls_ca_cert_file", function()
    local ca_file = helper.temp_file("-----BEGIN CERTIFICATE-----\n")

    local settings = parse({ "tls_ca_cert_file = " .. ca_file })

    assert.equal(ca_file, settings.tls_ca_cert_file)
  end)

  it("loads settings from a file", function()
    local path = helper.temp_file(helper.settings_text(account_file, { "timeout_msecs = 1500" }))

    local settings = config.loadSettings(path)

    assert.equal(helper.USERINFO_URL, settings.introspection_url.text)
    assert.equal(1500, settings.timeout_msecs)
  end)
end)

describe("config.parseSettings errors", function()
  local config
  local account_file
  local missing_path

  before_each(function()
    config = helper.load_bridge().config
    account_file = helper.accounts_file({ helper.USER })
    missing_path = helper.temp_path()
  end)

  after_each(function()
    helper.remove_temp_files()
  end)

  -- Each case replaces or adds lines after a valid base. `key` and `fix` must both appear in
  -- the message. The client_secret line comes first, so every case parses it before failing.
  local function base(overrides)
    local lines = {
      "client_secret = " .. helper.CLIENT_SECRET,
      "introspection_url = " .. helper.USERINFO_URL,
      "account_file = " .. account_file,
    }
    local base_count = #lines
    for _, line in ipairs(overrides) do
      local key = line:match("^([%w_]+)%s*=")
      local replaced = false
      for index = 2, base_count do
        if key ~= nil and lines[index]:match("^([%w_]+)") == key then
          lines[index] = line
          replaced = true
        end
      end
      if not replaced then
        lines[#lines + 1] = line
      end
    end
    return table.concat(lines, "\n") .. "\n"
  end

  local cases = {
    {
      name = "missing introspection_url",
      text = function()
        return ("client_secret = %s\naccount_file = %s\n"):format(helper.CLIENT_SECRET, account_file)
      end,
      key = "introspection_url is missing",
      fix = "Set it to the identity provider's userinfo URL",
    },
    { name = "unknown key", lines = { "introspection_urls = x" }, key = "introspection_urls", fix = "Check the spelling" },
    { name = "unknown key lists known keys", lines = { "timeout = 5" }, key = "timeout", fix = "Known settings: account_file" },
    { name = "Dovecot grant_url", lines = { "grant_url = https://x.test/" }, key = "grant_url", fix = "Remove the line" },
    { name = "Dovecot tls_ca_cert_dir", lines = { "tls_ca_cert_dir = /etc/ssl/certs" }, key = "tls_ca_cert_dir", fix = "Remove the line" },
    { name = "Dovecot local_validation_key_dict", lines = { "local_validation_key_dict = fs:posix:prefix=/x/" }, key = "local_validation_key_dict", fix = "does not support" },
    { name = "duplicate key", lines = { "timeout_msecs = 5", "timeout_msecs = 6" }, key = "timeout_msecs is set twice", fix = "Keep only one timeout_msecs line" },
    { name = "line without equals", lines = { "timeout_msecs 5000" }, key = "line 4", fix = "Fix the line or comment it out with #" },
    { name = "key with a hyphen", lines = { "client-id = roundcube" }, key = "line 4", fix = 'expected "key = value"' },
    { name = "bad boolean", lines = { "tls_allow_invalid_cert = maybe" }, key = 'tls_allow_invalid_cert = "maybe"', fix = "Use yes or no" },
    { name = "boolean 1", lines = { "tls_allow_invalid_cert = 1" }, key = "tls_allow_invalid_cert", fix = "Use yes or no" },
    { name = "bad integer", lines = { "timeout_msecs = 5s" }, key = 'timeout_msecs = "5s"', fix = "Use a number from 1 to 600000" },
    { name = "negative integer", lines = { "timeout_msecs = -1" }, key = "timeout_msecs", fix = "Use a number from 1 to 600000" },
    { name = "fractional integer", lines = { "max_response_bytes = 2048.5" }, key = "max_response_bytes", fix = "Use a number from 1024 to 16777216" },
    { name = "integer below range", lines = { "timeout_msecs = 0" }, key = 'timeout_msecs = "0" is out of range', fix = "Use a number from 1 to 600000" },
    { name = "integer above range", lines = { "timeout_msecs = 600001" }, key = "timeout_msecs", fix = "Use a number from 1 to 600000" },
    { name = "response limit below range", lines = { "max_response_bytes = 1023" }, key = "max_response_bytes", fix = "Use a number from 1024 to 16777216" },
    { name = "response limit above range", lines = { "max_response_bytes = 16777217" }, key = "max_response_bytes", fix = "Use a number from 1024 to 16777216" },
    { name = "URL with ftp scheme", lines = { "introspection_url = ftp://idp.example.test/" }, key = "introspection_url", fix = "the scheme must be http or https" },
    { name = "URL without scheme", lines = { "introspection_url = idp.example.test/userinfo" }, key = "introspection_url", fix = "Use an absolute http:// or https:// URL" },
    { name = "URL without host", lines = { "introspection_url = https:///userinfo" }, key = "introspection_url", fix = "the host is missing" },
    { name = "URL with port 0", lines = { "introspection_url = https://idp.example.test:0/" }, key = "introspection_url", fix = "the port is not a number from 1 to 65535" },
    { name = "URL with port 65536", lines = { "introspection_url = https://idp.example.test:65536/" }, key = "introspection_url", fix = "the port is not a number from 1 to 65535" },
    { name = "URL with named port", lines = { "introspection_url = https://idp.example.test:https/" }, key = "introspection_url", fix = "the port is not a number" },
    { name = "tokeninfo_url with credentials", lines = { "tokeninfo_url = https://user:pw@idp.example.test/" }, key = "tokeninfo_url", fix = "credentials in the URL are not supported" },
    { name = "discovery URL with credentials", lines = { "openid_configuration_url = https://user:pw@idp.example.test/" }, key = "openid_configuration_url", fix = "credentials in the URL are not supported" },
    { name = "URL with user only", lines = { "introspection_url = https://roundcube@idp.example.test/" }, key = "introspection_url", fix = "need a user and a password" },
    { name = "tokeninfo_url with ftp scheme", lines = { "tokeninfo_url = ftp://idp.example.test/" }, key = "tokeninfo_url", fix = "the scheme must be http or https" },
    { name = "discovery URL without host", lines = { "openid_configuration_url = https:///" }, key = "openid_configuration_url", fix = "the host is missing" },
    { name = "URL with fragment", lines = { "introspection_url = https://idp.example.test/userinfo#top" }, key = "introspection_url", fix = "a #fragment is not allowed" },
    { name = "URL with space", lines = { "introspection_url = https://idp.example .test/" }, key = "introspection_url", fix = "spaces or control characters" },
    { name = "URL with two ports", lines = { "introspection_url = https://idp.example.test:8443:443/" }, key = "introspection_url", fix = "Use an absolute http:// or https:// URL" },
    { name = "format without variable", lines = { "username_format = mailbox" }, key = "username_format", fix = "Use %u, %n or %d" },
    { name = "format with unknown variable", lines = { "username_format = %x@example.test" }, key = "username_format", fix = "unsupported variable %x" },
    { name = "format with dangling L", lines = { "username_format = %L" }, key = "username_format", fix = "Use %u, %n or %d, optionally as %Lu" },
    {
      name = "unreadable tls_ca_cert_file",
      lines = function() return { "tls_ca_cert_file = " .. missing_path } end,
      key = "tls_ca_cert_file",
      fix = "Check the path and its permissions",
    },
    {
      name = "tls_ca_cert_file directory",
      lines = function() return { "tls_ca_cert_file = " .. helper.temp_dir() } end,
      key = "tls_ca_cert_file",
      fix = "Check the path",
    },
    {
      name = "unreadable account_file",
      lines = function() return { "account_file = " .. missing_path } end,
      key = "account_file",
      fix = "Check the path and its permissions",
    },
    { name = "unsupported introspection_mode", lines = { "introspection_mode = jwt" }, key = 'introspection_mode = "jwt" is not supported', fix = "Use one of: auth, get, post" },
    { name = "unsupported client_auth_method", lines = { "client_auth_method = private_key_jwt" }, key = "client_auth_method", fix = "Use one of: client_secret_basic, client_secret_post" },
    { name = "unsupported scope_match", lines = { "scope_match = some" }, key = "scope_match", fix = "Use one of: any, all" },
    { name = "bad force_introspection", lines = { "force_introspection = always" }, key = "force_introspection", fix = "Use yes or no" },
    { name = "bad require_email_verified", lines = { "require_email_verified = 1" }, key = "require_email_verified", fix = "Use yes or no" },
    { name = "refresh below range", lines = { "discovery_refresh_secs = 59" }, key = "discovery_refresh_secs", fix = "Use a number from 60 to 604800" },
    { name = "refresh above range", lines = { "discovery_refresh_secs = 604801" }, key = "discovery_refresh_secs", fix = "Use a number from 60 to 604800" },
    { name = "clock skew above range", lines = { "clock_skew_secs = 3601" }, key = "clock_skew_secs", fix = "Use a number from 0 to 3600" },
    { name = "negative clock skew", lines = { "clock_skew_secs = -1" }, key = "clock_skew_secs", fix = "Use a number from 0 to 3600" },
    { name = "pass_attrs without value", lines = { "pass_attrs = proxy" }, key = "pass_attrs", fix = '"proxy", which is not a name=value pair' },
    { name = "pass_attrs without name", lines = { "pass_attrs = =y" }, key = "pass_attrs", fix = "not a name=value pair" },
    { name = "pass_attrs other variable", lines = { "pass_attrs = home=%{user}" }, key = "pass_attrs", fix = "only %{oauth2:claim} variables and %% are supported" },
    { name = "pass_attrs empty claim", lines = { "pass_attrs = host=%{oauth2:}" }, key = "pass_attrs", fix = "host: only %{oauth2:claim}" },
    { name = "pass_attrs unclosed variable", lines = { "pass_attrs = host=%{oauth2:mail_host" }, key = "pass_attrs", fix = "Use space-separated name=value pairs" },
    { name = "pass_attrs lone percent", lines = { "pass_attrs = quota=50%" }, key = "pass_attrs", fix = "Use space-separated name=value pairs" },
    { name = "unsupported account_source", lines = { "account_source = nis" }, key = 'account_source = "nis" is not supported', fix = "Use one of: postfix-accounts, passwd-file, ldap" },
  }

  for _, case in ipairs(cases) do
    local function text_of()
      if case.text ~= nil then
        return case.text()
      end
      local lines = case.lines
      if type(lines) == "function" then
        lines = lines()
      end
      return base(lines)
    end

    it(("rejects %s"):format(case.name), function()
      local message = helper.error_message(config.parseSettings, text_of(), ORIGIN)

      assert.contains_text(message, case.key)
      assert.contains_text(message, case.fix)
      assert.is_not.contains_text(message, helper.CLIENT_SECRET)
    end)
  end

  it("names the origin in errors", function()
    local message = helper.error_message(config.parseSettings, base({ "timeout_msecs = soon" }), "/etc/dovecot/oauth2-bridge.conf")

    assert.contains_text(message, "/etc/dovecot/oauth2-bridge.conf")
  end)

  it("raises a SettingsError object", function()
    local ok, problem = pcall(config.parseSettings, base({ "timeout_msecs = soon" }), ORIGIN)

    assert.is_false(ok)
    assert.equal(config.SettingsError.prototype, getmetatable(problem))
  end)

  it("names the variable for a missing file", function()
    local message = helper.error_message(config.loadSettings, missing_path)

    assert.contains_text(message, "cannot read the settings file")
    assert.contains_text(message, "OAUTH2_BRIDGE_CONFIG")
  end)
end)

describe("config.parseSettings URL credentials", function()
  local config
  local account_file

  local function parse(lines)
    return config.parseSettings(helper.config_text(account_file, lines), ORIGIN)
  end

  before_each(function()
    config = helper.load_bridge().config
    account_file = helper.accounts_file({ helper.USER })
  end)

  after_each(function()
    helper.remove_temp_files()
  end)

  it("moves credentials into client keys", function()
    local settings = parse({
      "introspection_mode = post",
      "introspection_url = https://roundcube:" .. helper.CLIENT_SECRET .. "@idp.example.test/introspect",
    })

    assert.equal("roundcube", settings.client_id)
    assert.equal(helper.CLIENT_SECRET, settings.client_secret)
  end)

  it("removes credentials from the URL", function()
    local settings = parse({
      "introspection_mode = post",
      "introspection_url = https://roundcube:" .. helper.CLIENT_SECRET .. "@idp.example.test:8443/introspect?realm=mail",
    })
    local url = settings.introspection_url

    assert.equal("https://idp.example.test:8443/introspect?realm=mail", url.text)
    assert.equal("idp.example.test", url.host)
    assert.equal(8443, url.port)
  end)

  it("percent-decodes URL credentials", function()
    local settings = parse({
      "introspection_mode = post",
      "introspection_url = https://mail%20client:Vr4%3AU+x8%252F%2FZq%20w@idp.example.test/introspect",
    })

    assert.equal("mail client", settings.client_id)
    assert.equal(helper.SPECIAL_SECRET, settings.client_secret)
  end)

  -- The client secret must stay out of every error, also when it sits in a URL that is invalid
  -- for another reason, because Dovecot logs script_init errors.
  local invalid = {
    { name = "port 0", url = "https://roundcube:%s@idp.example.test:0/introspect" },
    { name = "fragment", url = "https://roundcube:%s@idp.example.test/introspect#top" },
    { name = "ftp scheme", url = "ftp://roundcube:%s@idp.example.test/introspect" },
    { name = "unencoded slash", url = "https://roundcube:x/%s@idp.example.test/introspect" },
    { name = "unencoded at sign", url = "https://roundcube:x@%s@idp.example.test:0/introspect" },
  }
  for _, case in ipairs(invalid) do
    it(("hides URL secret with %s"):format(case.name), function()
      local line = "introspection_url = " .. case.url:format(helper.CLIENT_SECRET)

      local message = helper.error_message(parse, { line })

      assert.contains_text(message, "introspection_url")
      assert.is_not.contains_text(message, helper.CLIENT_SECRET)
    end)
  end
end)

describe("config.parseSettings cross-field rules", function()
  local config
  local account_file

  local INTROSPECTION_URL = "https://idp.example.test/introspect"
  local TOKENINFO_URL = "https://idp.example.test/tokeninfo?access_token="
  local DISCOVERY_URL = "https://idp.example.test/.well-known/openid-configuration"

  before_each(function()
    config = helper.load_bridge().config
    account_file = helper.accounts_file({ helper.USER })
  end)

  after_each(function()
    helper.remove_temp_files()
  end)

  local errors = {
    {
      name = "post without client_id",
      lines = { "introspection_url = " .. INTROSPECTION_URL, "introspection_mode = post", "client_secret = " .. helper.CLIENT_SECRET },
      message = "introspection_mode = post needs client_id and client_secret",
    },
    {
      name = "post without client_secret",
      lines = { "introspection_url = " .. INTROSPECTION_URL, "introspection_mode = post", "client_id = roundcube" },
      message = "(RFC 7662 section 2.1)",
    },
    {
      name = "post with client_secret_post only",
      lines = { "introspection_url = " .. INTROSPECTION_URL, "introspection_mode = post", "client_auth_method = client_secret_post" },
      message = "needs client_id and client_secret",
    },
    {
      name = "post with only tokeninfo_url",
      lines = { "tokeninfo_url = " .. TOKENINFO_URL, "introspection_mode = post", "client_id = roundcube", "client_secret = " .. helper.CLIENT_SECRET },
      message = "introspection_mode = post needs introspection_url or openid_configuration_url",
    },
    {
      name = "force_introspection without tokeninfo_url",
      lines = { "introspection_url = " .. INTROSPECTION_URL, "force_introspection = yes" },
      message = "force_introspection = yes needs tokeninfo_url and introspection_url",
    },
    {
      name = "force_introspection without endpoint",
      lines = { "tokeninfo_url = " .. TOKENINFO_URL, "force_introspection = yes" },
      message = "force_introspection = yes needs tokeninfo_url and introspection_url (or openid_configuration_url)",
    },
    {
      name = "active_attribute without active_value",
      lines = { "introspection_url = " .. INTROSPECTION_URL, "active_attribute = status" },
      message = "active_attribute and active_value must be set together. Set both, or remove both",
    },
    {
      name = "active_value without active_attribute",
      lines = { "introspection_url = " .. INTROSPECTION_URL, "active_value = enabled" },
      message = "active_attribute and active_value must be set together",
    },
    {
      name = "URL credentials plus client_id",
      lines = { "introspection_url = https://roundcube:" .. helper.CLIENT_SECRET .. "@idp.example.test/introspect", "introspection_mode = post", "client_id = roundcube" },
      message = "introspection_url contains client credentials and client_id or client_secret is set too. Remove the credentials from the URL",
    },
    {
      name = "URL credentials plus client_secret",
      lines = { "introspection_url = https://roundcube:" .. helper.CLIENT_SECRET .. "@idp.example.test/introspect", "introspection_mode = post", "client_secret = other" },
      message = "Remove the credentials from the URL",
    },
    {
      name = "URL credentials outside mode post",
      lines = { "introspection_url = https://roundcube:" .. helper.CLIENT_SECRET .. "@idp.example.test/userinfo" },
      message = "which are only sent with introspection_mode = post",
    },
    {
      name = "no endpoint key",
      lines = { "client_id = roundcube", "client_secret = " .. helper.CLIENT_SECRET },
      message = "introspection_url is missing",
    },
    {
      name = "only empty endpoint keys",
      lines = { "introspection_url =", "tokeninfo_url = ", 'openid_configuration_url = ""' },
      message = "or set tokeninfo_url or openid_configuration_url",
    },
  }
  for _, case in ipairs(errors) do
    it(("rejects %s"):format(case.name), function()
      local message = helper.error_message(config.parseSettings, helper.config_text(account_file, case.lines), ORIGIN)

      assert.contains_text(message, ORIGIN .. ": ")
      assert.contains_text(message, case.message)
      assert.is_not.contains_text(message, helper.CLIENT_SECRET)
    end)
  end

  local accepted = {
    { name = "tokeninfo_url alone", lines = { "tokeninfo_url = " .. TOKENINFO_URL } },
    { name = "discovery alone", lines = { "openid_configuration_url = " .. DISCOVERY_URL } },
    { name = "post through discovery", lines = { "openid_configuration_url = " .. DISCOVERY_URL, "introspection_mode = post", "client_id = roundcube", "client_secret = " .. helper.CLIENT_SECRET } },
    { name = "post with URL credentials", lines = { "introspection_url = https://roundcube:" .. helper.CLIENT_SECRET .. "@idp.example.test/introspect", "introspection_mode = post" } },
    { name = "force_introspection with discovery", lines = { "tokeninfo_url = " .. TOKENINFO_URL, "openid_configuration_url = " .. DISCOVERY_URL, "force_introspection = yes" } },
    { name = "force_introspection with introspection_url", lines = { "tokeninfo_url = " .. TOKENINFO_URL, "introspection_url = " .. INTROSPECTION_URL, "force_introspection = yes" } },
    { name = "both active keys", lines = { "introspection_url = " .. INTROSPECTION_URL, "active_attribute = status", "active_value = enabled" } },
    { name = "client keys in mode auth", lines = { "introspection_url = " .. INTROSPECTION_URL, "client_id = roundcube" } },
  }
  for _, case in ipairs(accepted) do
    it(("accepts %s"):format(case.name), function()
      local ok, problem = pcall(config.parseSettings, helper.config_text(account_file, case.lines), ORIGIN)

      assert.is_true(ok, problem and problem.message)
    end)
  end
end)
