-- Dovecot 2.4 support: settings from lua_settings, and the fail-closed passdb check.

local helper = require("spec.unit.helper")

local SCRIPT = "/usr/local/share/dovecot-oauth2-bridge/oauth2-bridge.lua"

local function doveconf(passdb_lines, global_lines)
  local lines = { "dovecot_config_version = 2.4.0" }
  for _, line in ipairs(global_lines or {}) do
    lines[#lines + 1] = line
  end
  lines[#lines + 1] = "oauth2 {"
  lines[#lines + 1] = "  introspection_url = https://idp.example.test/userinfo"
  lines[#lines + 1] = "}"
  lines[#lines + 1] = "passdb passwd-file {"
  lines[#lines + 1] = "  result_failure = continue"
  lines[#lines + 1] = "}"
  lines[#lines + 1] = "passdb lua {"
  lines[#lines + 1] = "  lua_file = " .. SCRIPT
  for _, line in ipairs(passdb_lines) do
    lines[#lines + 1] = "  " .. line
  end
  lines[#lines + 1] = "  lua_settings {"
  lines[#lines + 1] = "    result_failure = continue"
  lines[#lines + 1] = "  }"
  lines[#lines + 1] = "}"
  return table.concat(lines, "\n") .. "\n"
end

local SAFE = { "mechanisms_filter = xoauth2 oauthbearer", "result_failure = return-fail", "result_internalfail = return-fail" }

describe("dovecot24.checkFailClosed", function()
  local dovecot24

  before_each(function()
    dovecot24 = helper.load_bridge().dovecot24
  end)

  it("accepts fail-closed passdb block", function()
    assert.is_nil(dovecot24.checkFailClosed(doveconf(SAFE), SCRIPT))
  end)

  it("accepts global return-fail results", function()
    local text = doveconf({ "mechanisms_filter = xoauth2 oauthbearer" }, {
      "passdb_result_failure = return-fail",
      "passdb_result_internalfail = return-fail",
    })

    assert.is_nil(dovecot24.checkFailClosed(text, SCRIPT))
  end)

  local unsafe = {
    { name = "default results", lines = { "mechanisms_filter = xoauth2 oauthbearer" }, problem = "result_failure = continue" },
    { name = "internalfail missing", lines = { "mechanisms_filter = xoauth2 oauthbearer", "result_failure = return-fail" }, problem = "result_internalfail = continue" },
    { name = "result_failure return", lines = { "mechanisms_filter = xoauth2 oauthbearer", "result_failure = return", "result_internalfail = return-fail" }, problem = "result_failure = return" },
    { name = "filter without xoauth2", lines = { "mechanisms_filter = oauthbearer", "result_failure = return-fail", "result_internalfail = return-fail" }, problem = "mechanisms_filter lacks xoauth2" },
    { name = "no filter", lines = { "result_failure = return-fail", "result_internalfail = return-fail" }, problem = "mechanisms_filter lacks oauthbearer" },
  }
  for _, case in ipairs(unsafe) do
    it(("rejects %s"):format(case.name), function()
      local problem = dovecot24.checkFailClosed(doveconf(case.lines), SCRIPT)

      assert.contains_text(problem, case.problem)
      assert.contains_text(problem, "Set result_failure = return-fail")
    end)
  end

  it("ignores settings nested in lua_settings", function()
    local problem = dovecot24.checkFailClosed(doveconf({ "mechanisms_filter = xoauth2 oauthbearer" }), SCRIPT)

    assert.contains_text(problem, "result_failure = continue")
  end)

  it("rejects config without own block", function()
    local problem = dovecot24.checkFailClosed(doveconf(SAFE), "/other/script.lua")

    assert.contains_text(problem, "no passdb block with lua_file = /other/script.lua")
  end)
end)

describe("dovecot24.settingsTextFromTable", function()
  local bridge

  before_each(function()
    bridge = helper.load_bridge()
  end)

  after_each(helper.remove_temp_files)

  it("round-trips through the parser", function()
    local accounts = helper.accounts_file({ helper.USER })
    local text = bridge.dovecot24.settingsTextFromTable({
      introspection_url = helper.USERINFO_URL,
      account_file = accounts,
      client_secret = 'se"cr#et',
      introspection_mode = "post",
      client_id = "dovecot",
    })

    local settings = bridge.config.parseSettings(text, "lua_settings")

    assert.equal(helper.USERINFO_URL, settings.introspection_url.text)
    assert.equal('se"cr#et', settings.client_secret)
    assert.equal(accounts, settings.account_file)
  end)

  it("rejects value with line break", function()
    local message = helper.error_message(bridge.dovecot24.settingsTextFromTable, { client_id = "a\nb" })

    assert.contains_text(message, "client_id contains a line break")
  end)
end)
