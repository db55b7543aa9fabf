-- Each token policy setting, and each type a claim can arrive in, through passdb.verifyLogin with
-- a userinfo response decoded from JSON text, so JSON null is read as the bridge really reads it.

local helper = require("spec.unit.helper")

-- Every log line that a test records must be free of the token and the client secrets.
after_each(helper.assert_logs_clean)

local NOW = helper.NOW
local USER = helper.USER

local MISMATCH, FAILURE = "PASSWORD_MISMATCH", "INTERNAL_FAILURE"

-- A userinfo body for USER with the JSON members in `members` (text such as '"scope":"mail"').
local function body(members)
  if members == "" then
    return '{"email":"alice@example.test"}'
  end
  return '{"email":"alice@example.test",' .. members .. "}"
end

describe("policy settings", function()
  local bridge
  local account_path
  local logger

  local function login(lines, text)
    local settings = bridge.config.parseSettings(helper.settings_text(account_path, lines), "test.conf")
    local transport = helper.transport({ ok = true, status = 200, body = text })
    return bridge.passdb.verifyLogin(helper.context(bridge, settings, account_path, transport), USER, helper.TOKEN, logger)
  end

  local function run(group, lines, cases)
    for _, case in ipairs(cases) do
      it(("%s returns %s for %s"):format(group, case[3], case[1]), function()
        local verdict = login(case.lines or lines, body(case[2]))

        helper.assert_verdict(verdict, case[3], case[4])
        helper.assert_no_secrets(logger.lines, verdict.reason)
      end)
    end
  end

  before_each(function()
    bridge = helper.load_bridge()
    account_path = helper.accounts_file({ USER, "bob@example.test" })
    logger = helper.logger()
  end)

  after_each(function()
    helper.remove_temp_files()
  end)

  -- Each case: name, JSON members, result, and a part of the reason.
  run("scope any", { "scope = mail" }, {
    { "matching string", '"scope":"mail"', "OK" },
    { "string with others", '"scope":"openid mail profile"', "OK" },
    { "array", '"scope":["openid","mail"]', "OK" },
    { "missing scope", '"scope":"openid profile"', MISMATCH, "Token lacks the required scope (one of: mail)" },
    { "longer word", '"scope":"mailbox"', MISMATCH, "lacks the required scope" },
    { "other case", '"scope":"MAIL"', MISMATCH, "lacks the required scope" },
    { "empty string", '"scope":""', MISMATCH, "lacks the required scope" },
    { "empty array", '"scope":[]', MISMATCH, "lacks the required scope" },
    { 'string "false"', '"scope":"false"', MISMATCH, "lacks the required scope" },
    { "numeric string", '"scope":"42"', MISMATCH, "lacks the required scope" },
    { "absent claim", "", MISMATCH, "Token has no scope claim, and scope is required" },
    { "null", '"scope":null', MISMATCH, "Token has no scope claim" },
    { "scp array", '"scp":["openid","mail"]', "OK" },
    { "scp string", '"scp":"mail"', "OK" },
    { "null scope with scp", '"scope":null,"scp":["mail"]', "OK" },
    { "scope before scp", '"scope":"openid","scp":["mail"]', MISMATCH, "lacks the required scope" },
    { "number", '"scope":42', FAILURE, "Claim scope is neither a string nor an array of strings" },
    { "boolean", '"scope":true', FAILURE, "Claim scope is neither" },
    { "object", '"scope":{"mail":true}', FAILURE, "Claim scope is neither" },
    { "array with number", '"scope":["mail",1]', FAILURE, "Claim scope is neither" },
    { "nested array", '"scope":[["mail"]]', FAILURE, "Claim scope is neither" },
    { "scp number", '"scp":7', FAILURE, "Claim scp is neither" },
  })

  run("scope all", { "scope = mail openid", "scope_match = all" }, {
    { "both scopes", '"scope":"openid mail"', "OK" },
    { "both in array", '"scope":["mail","profile","openid"]', "OK" },
    { "one scope", '"scope":"mail"', MISMATCH, "Token lacks the required scope (all of: mail openid)" },
    { "no scope", '"scope":"profile"', MISMATCH, "all of: mail openid" },
  })

  run("scope any of two", { "scope = mail imap" }, {
    { "second scope", '"scope":"imap"', "OK" },
    { "neither scope", '"scope":"openid"', MISMATCH, "one of: mail imap" },
  })

  run("audience", { "audience = roundcube webmail" }, {
    { "aud string", '"aud":"roundcube"', "OK" },
    { "second audience", '"aud":"webmail"', "OK" },
    { "aud array", '"aud":["account","roundcube"]', "OK" },
    { "azp", '"aud":"account","azp":"roundcube"', "OK" },
    { "client_id", '"aud":"account","client_id":"roundcube"', "OK" },
    { "null aud with azp", '"aud":null,"azp":"roundcube"', "OK" },
    { "empty aud with client_id", '"aud":[],"client_id":"roundcube"', "OK" },
    { "other aud", '"aud":"account"', MISMATCH, "Token is not for an accepted audience (aud, azp, client_id)" },
    { "absent claims", "", MISMATCH, "not for an accepted audience" },
    { "null aud", '"aud":null', MISMATCH, "not for an accepted audience" },
    { "aud prefix", '"aud":"roundcube-dev"', MISMATCH, "not for an accepted audience" },
    { "aud space-separated", '"aud":"account roundcube"', "OK" },
    { "aud number", '"aud":42', FAILURE, "Claim aud is neither a string nor an array of strings" },
    { "aud boolean", '"aud":true', FAILURE, "Claim aud is neither" },
    { "aud object", '"aud":{"roundcube":true}', FAILURE, "Claim aud is neither" },
    { "aud array with number", '"aud":["roundcube",1]', FAILURE, "Claim aud is neither" },
    { "azp number", '"azp":42', MISMATCH, "not for an accepted audience" },
    { "client_id array", '"client_id":["roundcube"]', MISMATCH, "not for an accepted audience" },
  })

  run("issuers", { "issuers = https://auth.example.test https://auth.example.test/realms/mail" }, {
    { "first issuer", '"iss":"https://auth.example.test"', "OK" },
    { "second issuer", '"iss":"https://auth.example.test/realms/mail"', "OK" },
    { "other issuer", '"iss":"https://evil.example.test"', MISMATCH, "Token issuer https://evil.example.test is not in issuers" },
    { "trailing slash", '"iss":"https://auth.example.test/"', MISMATCH, "is not in issuers" },
    { "absent iss", "", MISMATCH, "Token has no iss claim, and issuers is set" },
    { "null iss", '"iss":null', MISMATCH, "Token has no iss claim" },
    { "empty iss", '"iss":""', MISMATCH, "is not in issuers" },
    { "number iss", '"iss":42', FAILURE, "Claim iss is not a string (number)" },
    { "array iss", '"iss":["https://auth.example.test"]', FAILURE, "Claim iss is not a string (object or array)" },
    { "boolean iss", '"iss":true', FAILURE, "Claim iss is not a string (boolean)" },
  })

  -- Only JSON true counts, so Google's tokeninfo v3 string "true" is refused too.
  run("email_verified required", { "require_email_verified = yes" }, {
    { "true", '"email_verified":true', "OK" },
    { "false", '"email_verified":false', MISMATCH, "Claim email_verified is not true, and require_email_verified = yes" },
    { 'string "true"', '"email_verified":"true"', MISMATCH, "email_verified is not true" },
    { 'string "TRUE"', '"email_verified":"TRUE"', MISMATCH, "email_verified is not true" },
    { 'string "false"', '"email_verified":"false"', MISMATCH, "email_verified is not true" },
    { "number 1", '"email_verified":1', MISMATCH, "email_verified is not true" },
    { "null", '"email_verified":null', MISMATCH, "email_verified is not true" },
    { "absent claim", "", MISMATCH, "email_verified is not true" },
    { "array", '"email_verified":[true]', MISMATCH, "email_verified is not true" },
    { "object", '"email_verified":{"value":true}', MISMATCH, "email_verified is not true" },
  })

  run("email_verified optional", {}, {
    { "false", '"email_verified":false', "OK" },
    { "absent claim", "", "OK" },
  })

  run("active_attribute text", { "active_attribute = status", "active_value = enabled" }, {
    { "equal string", '"status":"enabled"', "OK" },
    { "other string", '"status":"disabled"', MISMATCH, "Token is not active: claim status does not have the active_value" },
    { "other case", '"status":"Enabled"', MISMATCH, "does not have the active_value" },
    { "absent claim", "", MISMATCH, "does not have the active_value" },
    { "null", '"status":null', MISMATCH, "does not have the active_value" },
    { "array", '"status":["enabled"]', MISMATCH, "does not have the active_value" },
    { "object", '"status":{"value":"enabled"}', MISMATCH, "does not have the active_value" },
  })

  run("active_attribute boolean", { "active_attribute = verified", "active_value = true" }, {
    { "JSON true", '"verified":true', "OK" },
    { 'string "true"', '"verified":"true"', "OK" },
    { "JSON false", '"verified":false', MISMATCH, "does not have the active_value" },
    { 'string "false"', '"verified":"false"', MISMATCH, "does not have the active_value" },
  })

  -- Dovecot compares the JSON text of the claim, so a JSON 1 equals active_value = 1.
  run("active_attribute number", { "active_attribute = level", "active_value = 1" }, {
    { "JSON number", '"level":1', "OK" },
    { "numeric string", '"level":"1"', "OK" },
    { "other number", '"level":2', MISMATCH, "does not have the active_value" },
    { "boolean", '"level":true', MISMATCH, "does not have the active_value" },
  })

  run("exp", {}, {
    { "future number", '"exp":' .. (NOW + 300), "OK" },
    { "future numeric string", ('"exp":"%d"'):format(NOW + 300), "OK" },
    { "future fractional string", ('"exp":"%d.5"'):format(NOW + 300), "OK" },
    { "past numeric string", ('"exp":"%d"'):format(NOW - 31), MISMATCH, "Token has expired" },
    { "past number", '"exp":' .. (NOW - 31), MISMATCH, "Token has expired" },
    { "null", '"exp":null', "OK" },
    { "absent claim", "", "OK" },
    { "word", '"exp":"tomorrow"', FAILURE, "Claim exp is not a number (string)" },
    { 'string "false"', '"exp":"false"', FAILURE, "Claim exp is not a number (string)" },
    { "boolean", '"exp":false', FAILURE, "Claim exp is not a number (boolean)" },
    { "array", '"exp":[' .. (NOW + 300) .. "]", FAILURE, "Claim exp is not a number (object or array)" },
    { "object", '"exp":{"at":' .. (NOW + 300) .. "}", FAILURE, "Claim exp is not a number (object or array)" },
  })

  run("exp with skew 0", { "clock_skew_secs = 0" }, {
    { "exp at now", '"exp":' .. NOW, MISMATCH, "Token has expired" },
    { "exp after now", '"exp":' .. (NOW + 1), "OK" },
  })

  run("exp with skew 600", { "clock_skew_secs = 600" }, {
    { "exp 599 seconds back", '"exp":' .. (NOW - 599), "OK" },
    { "exp 600 seconds back", '"exp":' .. (NOW - 600), MISMATCH, "Token has expired" },
  })

  -- The first failing check decides: active_attribute, exp, iss, aud, scope, email_verified, and
  -- only then the identity claim.
  local all = {
    "active_attribute = status",
    "active_value = enabled",
    "issuers = https://auth.example.test",
    "audience = roundcube",
    "scope = mail",
    "require_email_verified = yes",
  }
  run("order", all, {
    { "all passing", '"status":"enabled","iss":"https://auth.example.test","aud":"roundcube","scope":"mail","email_verified":true', "OK" },
    { "inactive and expired", '"status":"off","exp":1', MISMATCH, "claim status does not have the active_value" },
    { "expired and wrong iss", '"status":"enabled","exp":1,"iss":"x"', MISMATCH, "Token has expired" },
    { "wrong iss and aud", '"status":"enabled","iss":"x","aud":"y"', MISMATCH, "Token issuer x is not in issuers" },
    { "wrong aud and scope", '"status":"enabled","iss":"https://auth.example.test","aud":"y","scope":"z"', MISMATCH, "not for an accepted audience" },
    { "wrong scope and unverified", '"status":"enabled","iss":"https://auth.example.test","aud":"roundcube","scope":"z"', MISMATCH, "lacks the required scope" },
  })

  it("checks policy before identity", function()
    local text = '{"email":"bob@example.test","scope":"openid"}'

    local verdict = login({ "scope = mail" }, text)

    helper.assert_verdict(verdict, MISMATCH, "lacks the required scope")
  end)

  it("fails on bad type before identity", function()
    local text = '{"email":"bob@example.test","scope":42}'

    local verdict = login({ "scope = mail" }, text)

    helper.assert_verdict(verdict, FAILURE, "Claim scope is neither")
  end)
end)

describe("claims.readStringList", function()
  local claims

  before_each(function()
    claims = helper.load_bridge().claims
  end)

  local cases = {
    { name = "absent value", value = nil, expected = nil },
    { name = "string", value = "a b\tc", expected = { "a", "b", "c" } },
    { name = "blank string", value = "  ", expected = {} },
    { name = "array", value = { "a", "b" }, expected = { "a", "b" } },
    { name = "empty table", value = {}, expected = {} },
    { name = "number", value = 1, expected = false },
    { name = "boolean", value = false, expected = false },
    { name = "object", value = { a = "b" }, expected = false },
    { name = "array with table", value = { "a", { "b" } }, expected = false },
    { name = "sparse array", value = { [1] = "a", [3] = "c" }, expected = false },
  }
  for _, case in ipairs(cases) do
    it(("reads %s"):format(case.name), function()
      assert.same(case.expected, claims.readStringList(case.value))
    end)
  end
end)
