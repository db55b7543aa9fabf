local helper = require("spec.unit.helper")

describe("accounts.PostfixAccountsFile parsing", function()
  local accounts
  local reports

  local function open(text)
    local file = helper.new(accounts.PostfixAccountsFile, helper.temp_file(text))
    return file
  end

  local function record(report)
    reports[#reports + 1] = report
  end

  before_each(function()
    accounts = helper.load_bridge().accounts
    reports = {}
  end)

  after_each(function()
    helper.remove_temp_files()
  end)

  local text = table.concat({
    "# docker-mailserver accounts",
    "alice@example.test|{SHA512-CRYPT}$6$salt$hash",
    "",
    "   ",
    "Bob@Example.TEST|{SHA512-CRYPT}$6$salt$hash",
    "carol@example.test|{SHA512-CRYPT}$6$salt$hash|userdb_quota_rule=*:storage=1G|extra",
    "  dave@example.test|{PLAIN}x  ",
    "info@example.test",
    "not an account line",
    "|{SHA512-CRYPT}$6$salt$hash",
    "@example.test|{SHA512-CRYPT}$6$salt$hash",
    "erin@example.test|{SHA512-CRYPT}$6$salt$hash\r",
    "   # indented comment",
  }, "\n")

  local lookups = {
    { name = "alice@example.test", status = "found" },
    { name = "ALICE@EXAMPLE.TEST", status = "found" },
    { name = "bob@example.test", status = "found" },
    { name = "carol@example.test", status = "found" },
    { name = "dave@example.test", status = "found" },
    { name = "erin@example.test", status = "found" },
    { name = "info@example.test", status = "missing" },
    { name = "frank@example.test", status = "missing" },
    { name = "alice", status = "missing" },
    { name = "example.test", status = "missing" },
    { name = "# docker-mailserver accounts", status = "missing" },
  }
  for _, case in ipairs(lookups) do
    it(("reports %s as %s"):format(case.name, case.status), function()
      local file = open(text)

      local result = file:lookup(case.name)

      assert.equal(case.status, result.status)
    end)
  end

  it("counts the accounts it loaded", function()
    local file = open(text)

    file:lookup("alice@example.test", record)

    assert.equal(1, #reports)
    assert.equal(5, reports[1].accounts)
  end)

  it("reports malformed line numbers", function()
    local file = open(text)

    file:lookup("alice@example.test", record)

    assert.same({ 8, 9, 10, 11 }, reports[1].malformedLines)
  end)

  it("loads an empty file as no accounts", function()
    local file = open("")

    local result = file:lookup("alice@example.test", record)

    assert.equal("missing", result.status)
    assert.equal(0, reports[1].accounts)
    assert.same({}, reports[1].malformedLines)
  end)

  it("exposes its path", function()
    local path = helper.temp_file("alice@example.test|x\n")

    local file = helper.new(accounts.PostfixAccountsFile, path)

    assert.equal(path, file.path)
  end)
end)

describe("accounts.PostfixAccountsFile reloading", function()
  local accounts
  local path
  local file
  local reload_count
  local real_time

  local function count_reload()
    reload_count = reload_count + 1
  end

  local function lookup(name)
    return file:lookup(name, count_reload).status
  end

  -- Moves os.time() ten seconds ahead, so the file's times fall outside the one-second window
  -- in which a same-size rewrite could go unnoticed and the file counts as settled.
  local function advance_clock()
    os.time = function(...)
      if select("#", ...) > 0 then
        return real_time(...)
      end
      return real_time() + 10
    end
  end

  before_each(function()
    accounts = helper.load_bridge().accounts
    path = helper.accounts_file({ "alice@example.test" })
    file = helper.new(accounts.PostfixAccountsFile, path)
    reload_count = 0
    real_time = os.time
  end)

  after_each(function()
    os.time = real_time
    helper.remove_temp_files()
  end)

  it("reads the file on first lookup", function()
    assert.equal("found", lookup("alice@example.test"))
    assert.equal(1, reload_count)
  end)

  it("skips rereading an old unchanged file", function()
    advance_clock()

    lookup("alice@example.test")
    lookup("alice@example.test")
    lookup("bob@example.test")

    assert.equal(1, reload_count)
  end)

  it("sees same-size rewrite within a second", function()
    assert.equal("found", lookup("alice@example.test"))

    helper.rewrite(path, "carol@example.test|{SHA512-CRYPT}$6$spec$hash\n")

    assert.equal("found", lookup("carol@example.test"))
    assert.equal("missing", lookup("alice@example.test"))
  end)

  it("reports no reload of unchanged file", function()
    lookup("alice@example.test")

    lookup("alice@example.test")

    assert.equal(1, reload_count)
  end)

  it("reloads a file replaced by rename", function()
    assert.equal("found", lookup("alice@example.test"))
    local replacement = helper.accounts_file({ "bob@example.test" })

    assert(os.rename(replacement, path))

    assert.equal("found", lookup("bob@example.test"))
    assert.equal("missing", lookup("alice@example.test"))
  end)

  it("reloads a file rewritten with another size", function()
    advance_clock()
    assert.equal("found", lookup("alice@example.test"))

    helper.rewrite(path, "alice@example.test|x\nbob@example.test|{SHA512-CRYPT}$6$salt$longer-hash\n")

    assert.equal("found", lookup("bob@example.test"))
    assert.equal(2, reload_count)
  end)

  it("reloads a same-size rewrite within a second", function()
    helper.rewrite(path, "alice@example.test|hash\n")
    assert.equal("found", lookup("alice@example.test"))

    helper.rewrite(path, "carol@example.test|hash\n")

    assert.equal("found", lookup("carol@example.test"))
    assert.equal("missing", lookup("alice@example.test"))
  end)

  it("reports a removed file as unavailable", function()
    lookup("alice@example.test")
    os.remove(path)

    local result = file:lookup("alice@example.test")

    assert.equal("unavailable", result.status)
    assert.contains_text(result.reason, "cannot read " .. path)
  end)

  it("recovers when the file returns", function()
    lookup("alice@example.test")
    os.remove(path)
    assert.equal("unavailable", lookup("alice@example.test"))

    helper.rewrite(path, "alice@example.test|hash\n")

    assert.equal("found", lookup("alice@example.test"))
  end)

  it("reports a missing file as unavailable", function()
    local missing = helper.new(accounts.PostfixAccountsFile, helper.temp_path())

    local result = missing:lookup("alice@example.test")

    assert.equal("unavailable", result.status)
  end)

  it("reports a directory as unavailable", function()
    local directory = helper.new(accounts.PostfixAccountsFile, helper.temp_dir())

    local result = directory:lookup("alice@example.test")

    assert.equal("unavailable", result.status)
  end)

  it("returns refresh problems as text", function()
    os.remove(path)

    local problem = file:refresh()

    assert.equal("string", type(problem))
    assert.contains_text(problem, path)
  end)

  it("returns nil from refresh when readable", function()
    assert.is_nil(file:refresh())
  end)
end)
