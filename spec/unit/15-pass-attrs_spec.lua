-- pass_attrs: passdb fields returned with OK, where %{oauth2:claim} inserts a claim of the identity
-- provider's response.

local helper = require("spec.unit.helper")

-- Every log line that a test records must be free of the token and the client secrets.
after_each(helper.assert_logs_clean)

local USER = helper.USER

describe("pass_attrs fields", function()
  local bridge
  local account_path
  local logger

  local function login(value, text, user)
    local settings = bridge.config.parseSettings(helper.settings_text(account_path, { "pass_attrs = " .. value }), "test.conf")
    local transport = helper.transport({ ok = true, status = 200, body = text })
    local context = helper.context(bridge, settings, account_path, transport)
    return bridge.passdb.verifyLogin(context, user or USER, helper.TOKEN, logger)
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

  local body = '{"email":"alice@example.test","mail_host":"imap2.example.test","uid":1000,"ratio":0.5,'
    .. '"verified":true,"groups":["mail"],"home":null,"ext":{"quota":"2G"},"note":"50% %{oauth2:email}"}'

  -- Each case: pass_attrs value, then the expected fields.
  local cases = {
    { name = "constant value", value = "proxy=y", fields = { proxy = "y" } },
    { name = "empty value", value = "nopassword=", fields = { nopassword = "" } },
    { name = "string claim", value = "host=%{oauth2:mail_host}", fields = { host = "imap2.example.test" } },
    { name = "several fields", value = "proxy=y host=%{oauth2:mail_host}", fields = { proxy = "y", host = "imap2.example.test" } },
    { name = "text around a claim", value = "destuser=%{oauth2:email}+archive", fields = { destuser = "alice@example.test+archive" } },
    { name = "two claims in one value", value = "x=%{oauth2:mail_host}/%{oauth2:email}", fields = { x = "imap2.example.test/alice@example.test" } },
    { name = "nested claim", value = "userdb_quota_rule=*:storage=%{oauth2:ext.quota}", fields = { userdb_quota_rule = "*:storage=2G" } },
    { name = "percent sign", value = "ratio=100%%", fields = { ratio = "100%" } },
    { name = "missing claim", value = "host=%{oauth2:nothing}", fields = { host = "" } },
    { name = "null claim", value = "home=%{oauth2:home}", fields = { home = "" } },
    { name = "boolean claim", value = "v=%{oauth2:verified}", fields = { v = "" } },
    { name = "array claim", value = "g=%{oauth2:groups}", fields = { g = "" } },
    { name = "object claim", value = "e=%{oauth2:ext}", fields = { e = "" } },
    { name = "integer claim", value = "userdb_uid=%{oauth2:uid}", fields = { userdb_uid = "1000" } },
    { name = "fractional claim", value = "r=%{oauth2:ratio}", fields = { r = "0.5" } },
    { name = "claim with percent", value = "n=%{oauth2:note}", fields = { n = "50% %{oauth2:email}" } },
  }
  for _, case in ipairs(cases) do
    it(("returns %s"):format(case.name), function()
      local verdict = login(case.value, body)

      helper.assert_verdict(verdict, "OK")
      assert.same(case.fields, verdict.fields)
    end)
  end

  it("returns no fields on refusal", function()
    local verdict = login("proxy=y", body, "bob@example.test")

    helper.assert_verdict(verdict, "PASSWORD_MISMATCH")
    assert.is_nil(verdict.fields)
  end)
end)

describe("passAttributes.parsePassAttributes", function()
  local pass_attributes

  before_each(function()
    pass_attributes = helper.load_bridge().passAttributes
  end)

  it("keeps the order", function()
    local attributes = pass_attributes.parsePassAttributes("b=1 a=2 c=%{oauth2:x}")

    assert.same({
      { name = "b", template = "1" },
      { name = "a", template = "2" },
      { name = "c", template = "%{oauth2:x}" },
    }, attributes)
  end)

  it("splits only at the first equals sign", function()
    local attributes = pass_attributes.parsePassAttributes("userdb_quota_rule=*:storage=1G")

    assert.same({ { name = "userdb_quota_rule", template = "*:storage=1G" } }, attributes)
  end)

  local errors = {
    { value = "proxy", problem = 'contains "proxy", which is not a name=value pair' },
    { value = "a=1 =2", problem = 'contains "=2", which is not a name=value pair' },
    { value = "host=%{user}", problem = "host: only %{oauth2:claim} variables and %% are supported" },
    { value = "host=%u", problem = "host: only %{oauth2:claim} variables and %% are supported" },
    { value = "q=%%%", problem = "q: only %{oauth2:claim} variables and %% are supported" },
  }
  for _, case in ipairs(errors) do
    it(("rejects %s"):format(case.value), function()
      local attributes, problem = pass_attributes.parsePassAttributes(case.value)

      assert.is_nil(attributes)
      assert.equal(case.problem, problem)
    end)
  end
end)
