-- The AccountSource contract that every account source keeps. A lookup returns found, missing,
-- or unavailable with a reason. Each source also has a location for log lines and a check() for
-- the start. 16-account-file_spec and 18-ldap_spec test each source in depth.

local helper = require("spec.unit.helper")

-- Every log line that a test records must be free of the token and the secrets.
after_each(helper.assert_logs_clean)

local LDAP_URI = "ldap://127.0.0.1:3389"
local LDAP_BASE = "ou=people,dc=example,dc=test"

-- Each kind builds a source that lists helper.USER (as "Alice@Example.TEST", to show that
-- lookups normalise both sides) and a broken source that cannot be read or reached.
local kinds = {
  {
    name = "postfix-accounts",
    build = function(bundle)
      local path = helper.temp_file("Alice@Example.TEST|{SHA512-CRYPT}$6$salt$hash\n")
      return helper.new(bundle.accounts.PostfixAccountsFile, path), path
    end,
    build_broken = function(bundle)
      local path = helper.temp_path()
      return helper.new(bundle.accounts.PostfixAccountsFile, path), path
    end,
  },
  {
    name = "passwd-file",
    build = function(bundle)
      local path = helper.temp_file("Alice@Example.TEST:{PLAIN}x:1000:1000::/home/alice::\n")
      return helper.new(bundle.accounts.PasswdFile, path), path
    end,
    build_broken = function(bundle)
      local path = helper.temp_path()
      return helper.new(bundle.accounts.PasswdFile, path), path
    end,
  },
  {
    name = "ldap",
    build = function(bundle, lualdap)
      lualdap.reply = function(request)
        if request.base == LDAP_BASE and request.scope == "base" then
          return { LDAP_BASE }
        end
        if request.filter == "(mail=alice@example.test)" then
          return { "uid=alice," .. LDAP_BASE }
        end
        return {}
      end
      return helper.new(bundle.ldapAccounts.LdapAccounts, {
        ldap_uris = { LDAP_URI },
        ldap_base = LDAP_BASE,
        ldap_user_filter = "(mail=%u)",
        ldap_scope = "subtree",
        ldap_starttls = false,
      }), LDAP_URI .. " (" .. LDAP_BASE .. ")"
    end,
    build_broken = function(bundle, lualdap)
      lualdap.open = function()
        return "Invalid credentials"
      end
      return helper.new(bundle.ldapAccounts.LdapAccounts, {
        ldap_uris = { LDAP_URI },
        ldap_base = LDAP_BASE,
        ldap_user_filter = "(mail=%u)",
        ldap_scope = "subtree",
        ldap_starttls = false,
      }), LDAP_URI
    end,
  },
}

for _, kind in ipairs(kinds) do
  describe(("account source %s"):format(kind.name), function()
    local bundle
    local lualdap
    local restore_lualdap
    local logger

    before_each(function()
      lualdap = helper.fake_lualdap()
      restore_lualdap = helper.install_lualdap(lualdap)
      bundle = helper.load_bridge()
      logger = helper.logger()
    end)

    after_each(function()
      restore_lualdap()
      helper.remove_temp_files()
    end)

    it("returns found for a listed name", function()
      local source = kind.build(bundle, lualdap)

      assert.same({ status = "found" }, source:lookup(helper.USER, logger))
    end)

    it("ignores ASCII case of the name", function()
      local source = kind.build(bundle, lualdap)

      assert.same({ status = "found" }, source:lookup("ALICE@example.TEST", logger))
    end)

    it("returns missing for another name", function()
      local source = kind.build(bundle, lualdap)

      assert.same({ status = "missing" }, source:lookup("bob@example.test", logger))
    end)

    it("returns unavailable with a reason", function()
      local source, where = kind.build_broken(bundle, lualdap)

      local result = source:lookup(helper.USER, logger)

      assert.equal("unavailable", result.status)
      assert.is_string(result.reason)
      assert.contains_text(result.reason, where)
    end)

    it("names where its accounts are", function()
      local source, where = kind.build(bundle, lualdap)

      assert.equal(where, source.location)
    end)

    it("passes check when usable", function()
      local source = kind.build(bundle, lualdap)

      assert.is_nil(source:check())
    end)

    it("fails check when broken", function()
      local source, where = kind.build_broken(bundle, lualdap)

      local problem = source:check()

      assert.is_string(problem)
      assert.contains_text(problem, where)
    end)
  end)
end
