-- Every identity provider fixture in spec/fixtures/idp-shapes, served as the response of the
-- endpoint it comes from, with the settings an administrator would write for that provider. The
-- fixtures' timestamps assume that now is helper.NOW.

local cjson = require("cjson")
local helper = require("spec.unit.helper")

-- Every log line that a test records must be free of the token and the client secrets.
after_each(helper.assert_logs_clean)

local NOW = helper.NOW

local ENDPOINTS = {
  userinfo = { "introspection_url = https://idp.example.test/userinfo" },
  introspection = {
    "introspection_url = https://idp.example.test/introspect",
    "introspection_mode = post",
    "client_id = roundcube",
    "client_secret = " .. helper.CLIENT_SECRET,
  },
  tokeninfo = { "tokeninfo_url = https://idp.example.test/tokeninfo?access_token=" },
}

local MAILBOXES = { "alice@example.test", "john.doe@example.test", "john@example.test" }

-- Each case: fixture, endpoint, login name (alice unless given), settings lines, result, reason.
local CASES = {
  -- Authelia: the userinfo email is the first address, and introspection's username is the login
  -- name, not a mail address.
  { fixture = "authelia.userinfo", endpoint = "userinfo", user = "john.doe@example.test", result = "OK" },
  { fixture = "authelia.userinfo", endpoint = "userinfo", user = "john.doe@example.test", lines = { "scope = email" }, result = "OK" },
  { fixture = "authelia.userinfo", endpoint = "userinfo", user = "alice@example.test", result = "PASSWORD_MISMATCH", reason = "Token belongs to john.doe@example.test" },
  { fixture = "authelia.introspection", endpoint = "introspection", user = "john.doe@example.test", result = "INTERNAL_FAILURE", reason = "claim email is missing (claims present: active, aud, client_id, exp, iat, iss, scope, sub, username)" },
  { fixture = "authelia.introspection", endpoint = "introspection", user = "john.doe@example.test", lines = { "username_attribute = username" }, result = "PASSWORD_MISMATCH", reason = "Token belongs to john (claim username)" },
  { fixture = "authelia.introspection", endpoint = "introspection", user = "john@example.test", lines = { "username_attribute = username", "username_format = %Lu@example.test", "audience = roundcube" }, result = "OK" },

  -- Authentik: email_verified is false by default, and wrong client credentials look like an
  -- inactive token.
  { fixture = "authentik.userinfo", endpoint = "userinfo", result = "OK" },
  { fixture = "authentik.userinfo", endpoint = "userinfo", lines = { "require_email_verified = yes" }, result = "PASSWORD_MISMATCH", reason = "email_verified is not true" },
  { fixture = "authentik.introspection", endpoint = "introspection", lines = { "audience = roundcube", "scope = email", "issuers = https://auth.example.test/application/o/mail/" }, result = "OK" },
  { fixture = "authentik.introspection", endpoint = "introspection", lines = { "require_email_verified = yes" }, result = "PASSWORD_MISMATCH", reason = "email_verified is not true" },
  { fixture = "authentik.introspection-inactive", endpoint = "introspection", result = "PASSWORD_MISMATCH", reason = "Token is not active" },

  -- Dex: introspection nests the address under ext.
  { fixture = "dex.userinfo", endpoint = "userinfo", lines = { "audience = roundcube", "issuers = https://dex.example.test" }, result = "OK" },
  { fixture = "dex.introspection", endpoint = "introspection", lines = { "username_attribute = ext.email" }, result = "OK" },
  { fixture = "dex.introspection", endpoint = "introspection", result = "INTERNAL_FAILURE", reason = "claim email is missing" },

  -- Microsoft Entra: Graph /me has mail, which may be null, and no email.
  { fixture = "entra.userinfo", endpoint = "userinfo", result = "OK" },
  { fixture = "entra.graph-me", endpoint = "userinfo", lines = { "username_attribute = mail" }, result = "OK" },
  { fixture = "entra.graph-me", endpoint = "userinfo", result = "INTERNAL_FAILURE", reason = "claim email is missing" },
  { fixture = "entra.graph-me-no-mail", endpoint = "userinfo", lines = { "username_attribute = mail" }, result = "INTERNAL_FAILURE", reason = "claim mail is missing (claims present: @odata.context, displayName, id, userPrincipalName)" },

  -- Google: tokeninfo v3 sends exp and email_verified as strings, and the legacy userinfo v2 has
  -- verified_email instead of email_verified.
  { fixture = "google.tokeninfo-v3", endpoint = "tokeninfo", lines = { "audience = 123-abc.apps.example.test", "scope = https://mail.google.com/" }, result = "OK" },
  { fixture = "google.tokeninfo-v3", endpoint = "tokeninfo", lines = { "require_email_verified = yes" }, result = "PASSWORD_MISMATCH", reason = "email_verified is not true" },
  { fixture = "google.userinfo", endpoint = "userinfo", lines = { "require_email_verified = yes" }, result = "OK" },
  { fixture = "google.userinfo-v2", endpoint = "userinfo", result = "OK" },
  { fixture = "google.userinfo-v2", endpoint = "userinfo", lines = { "require_email_verified = yes" }, result = "PASSWORD_MISMATCH", reason = "email_verified is not true" },

  -- Ory Hydra: the admin port's introspection, with username and sub as configured.
  { fixture = "hydra.introspection", endpoint = "introspection", lines = { "username_attribute = username", "audience = roundcube", "issuers = https://hydra.example.test/" }, result = "OK" },

  -- Kanidm: preferred_username is an SPN, and introspection has no mail address at all.
  { fixture = "kanidm.userinfo", endpoint = "userinfo", lines = { "issuers = https://idm.example.test/oauth2/openid/roundcube" }, result = "OK" },
  { fixture = "kanidm.userinfo", endpoint = "userinfo", lines = { "username_attribute = preferred_username" }, result = "PASSWORD_MISMATCH", reason = "Token belongs to alice@idm.example.test" },
  { fixture = "kanidm.introspection", endpoint = "introspection", result = "INTERNAL_FAILURE", reason = "claim email is missing (claims present: active, aud, client_id, exp, iat, nbf, scope, sub, token_type, username)" },
  { fixture = "kanidm.introspection", endpoint = "introspection", lines = { "username_attribute = username" }, result = "PASSWORD_MISMATCH", reason = "Token belongs to alice@idm.example.test" },

  -- Keycloak: aud is "account", and the client is in azp and client_id.
  { fixture = "keycloak.userinfo", endpoint = "userinfo", result = "OK" },
  { fixture = "keycloak.introspection", endpoint = "introspection", lines = { "audience = roundcube", "issuers = https://auth.example.test/realms/mail", "require_email_verified = yes" }, result = "OK" },
  { fixture = "keycloak.introspection", endpoint = "introspection", lines = { "audience = webmail" }, result = "PASSWORD_MISMATCH", reason = "not for an accepted audience" },

  -- node oidc-provider: introspection carries only sub.
  { fixture = "oidc-provider.introspection", endpoint = "introspection", result = "INTERNAL_FAILURE", reason = "claim email is missing" },
  { fixture = "oidc-provider.introspection", endpoint = "introspection", lines = { "username_attribute = sub", "username_format = %Lu@example.test", "audience = https://mail.example.test" }, result = "OK" },

  -- Zitadel: aud is an array that names the project and the client.
  { fixture = "zitadel.userinfo", endpoint = "userinfo", result = "OK" },
  { fixture = "zitadel.introspection", endpoint = "introspection", lines = { "audience = 278912345678900001@mail", "require_email_verified = yes" }, result = "OK" },
  { fixture = "zitadel.introspection", endpoint = "introspection", lines = { "username_attribute = username" }, result = "PASSWORD_MISMATCH", reason = "Token belongs to alice@acme.example.test" },
}

local function settings_lines(case)
  local lines = {}
  for _, line in ipairs(ENDPOINTS[case.endpoint]) do
    lines[#lines + 1] = line
  end
  for _, line in ipairs(case.lines or {}) do
    lines[#lines + 1] = line
  end
  return lines
end

describe("providers", function()
  local bridge
  local account_path
  local logger

  local function login(case, now)
    local settings = bridge.config.parseSettings(helper.config_text(account_path, settings_lines(case)), "test.conf")
    local transport = helper.transport(helper.fixture_response(case.fixture))
    local context = helper.context(bridge, settings, account_path, transport, {
      now = function()
        return now or NOW
      end,
    })
    return bridge.passdb.verifyLogin(context, case.user or helper.USER, helper.TOKEN, logger), transport
  end

  before_each(function()
    bridge = helper.load_bridge()
    account_path = helper.accounts_file(MAILBOXES)
    logger = helper.logger()
  end)

  after_each(function()
    helper.remove_temp_files()
  end)

  it("covers every fixture", function()
    local covered = {}
    for _, case in ipairs(CASES) do
      covered[case.fixture] = true
    end

    for _, name in ipairs(helper.fixture_names()) do
      assert.is_true(covered[name] == true, "no case for fixture " .. name)
    end
  end)

  for _, case in ipairs(CASES) do
    local settings_note = case.lines and (" with " .. case.lines[1]) or ""

    it(("returns %s for %s%s"):format(case.result, case.fixture, settings_note), function()
      local verdict, transport = login(case)

      helper.assert_verdict(verdict, case.result, case.reason)
      assert.equal(1, #transport.calls)
      helper.assert_no_secrets(logger.lines, verdict.reason)
    end)
  end

  -- Each fixture with exp expires once the clock passes exp by the default skew of 30 seconds,
  -- checked with the fixture's first accepted case.
  local expiring = {}
  for _, case in ipairs(CASES) do
    local exp = cjson.decode(helper.fixture_text(case.fixture)).exp
    if case.result == "OK" and exp ~= nil and not expiring[case.fixture] then
      expiring[case.fixture] = true
      it(("expires %s after exp"):format(case.fixture), function()
        local before = login(case, tonumber(exp) + 29)
        local after = login(case, tonumber(exp) + 30)

        helper.assert_verdict(before, "OK")
        helper.assert_verdict(after, "PASSWORD_MISMATCH", "Token has expired")
      end)
    end
  end
end)
