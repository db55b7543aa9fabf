-- The files shipped in dovecot/ are parsed here, so they cannot drift from the settings parser.

local helper = require("spec.unit.helper")

local EXAMPLE = "dovecot/oauth2-bridge.conf.example"
local SETUP = "dovecot/oauth2-bridge-setup.sh"

local function read(path)
  local file = assert(io.open(path, "r"))
  local text = file:read("a")
  file:close()
  return text
end

--- Runs the setup script with `variables` and returns its exit status and the written file.
local function run_setup(variables)
  local output = helper.temp_path()
  local assignments = {}
  for name, value in pairs(variables) do
    assignments[#assignments + 1] = ("%s='%s'"):format(name, value)
  end
  local command = ("env -i PATH=/usr/bin:/bin %s bash %s %s >/dev/null 2>&1"):format(
    table.concat(assignments, " "), SETUP, output)
  local ok = os.execute(command)
  local file = io.open(output, "r")
  local text = file and file:read("a")
  if file then file:close() end
  return ok, text
end

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

    for key in pairs(config.KEYS) do
      assert.is_truthy(text:find("\n#?" .. key .. " =", 1, false), key .. " is not in the example")
    end
  end)

  it("parses with every key uncommented", function()
    local accounts = helper.accounts_file({ helper.USER })
    local text = read(EXAMPLE)
      :gsub("\n#([%w_]+ =)", "\n%1")
      :gsub("account_file = [^\n]*", "account_file = " .. accounts)
      :gsub("tls_ca_cert_file = [^\n]*", "tls_ca_cert_file = " .. accounts)

    local settings = config.parseSettings(text, EXAMPLE)

    assert.equal(5000, settings.timeout_msecs)
    assert.equal(65536, settings.max_response_bytes)
    assert.is_false(settings.tls_allow_invalid_cert)
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
