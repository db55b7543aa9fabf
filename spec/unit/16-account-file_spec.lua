-- The file account sources: docker-mailserver's postfix-accounts.cf and Dovecot's passwd-file,
-- read at the first lookup and again whenever the file changes.

local lfs = require("lfs")
local helper = require("spec.unit.helper")

-- Every log line that a test records must be free of the token and the secrets.
after_each(helper.assert_logs_clean)

local HASH = "{SHA512-CRYPT}$6$salt$hash"

describe("accounts.PostfixAccountsFile parsing", function()
  local accounts
  local logger

  local function open(text)
    return helper.new(accounts.PostfixAccountsFile, helper.temp_file(text))
  end

  before_each(function()
    accounts = helper.load_bridge().accounts
    logger = helper.logger()
  end)

  after_each(helper.remove_temp_files)

  local text = table.concat({
    "# docker-mailserver accounts",
    "alice@example.test|" .. HASH,
    "",
    "   ",
    "Bob@Example.TEST|" .. HASH,
    "carol@example.test|" .. HASH .. "|userdb_quota_rule=*:storage=1G|extra",
    "  dave@example.test|{PLAIN}x  ",
    "info@example.test",
    "not an account line",
    "|" .. HASH,
    "@example.test|" .. HASH,
    "erin@example.test|" .. HASH .. "\r",
    "   # indented comment",
    "\tfrank@example.test|" .. HASH,
    "grace@example.test|",
  }, "\n")

  local lookups = {
    { name = "alice@example.test", status = "found" },
    { name = "ALICE@EXAMPLE.TEST", status = "found" },
    { name = "bob@example.test", status = "found" },
    { name = "Bob@Example.TEST", status = "found" },
    { name = "carol@example.test", status = "found" },
    { name = "dave@example.test", status = "found" },
    { name = "erin@example.test", status = "found" },
    { name = "frank@example.test", status = "found" },
    { name = "grace@example.test", status = "found" },
    { name = "info@example.test", status = "missing" },
    { name = "heidi@example.test", status = "missing" },
    { name = "alice", status = "missing" },
    { name = "example.test", status = "missing" },
    { name = "alice@example.test|" .. HASH, status = "missing" },
    { name = " alice@example.test", status = "missing" },
    { name = "# docker-mailserver accounts", status = "missing" },
    { name = "", status = "missing" },
  }
  for _, case in ipairs(lookups) do
    it(("reports %q as %s"):format(case.name, case.status), function()
      local file = open(text)

      local result = file:lookup(case.name, logger)

      assert.equal(case.status, result.status)
    end)
  end

  it("logs the number of accounts", function()
    local file = open(text)

    file:lookup(helper.USER, logger)

    assert.same({ "Account list loaded from " .. file.path .. ": 7 accounts" }, helper.messages(logger.lines, "info"))
  end)

  it("warns about malformed line numbers", function()
    local file = open(text)

    file:lookup(helper.USER, logger)

    assert.same(
      { "Account list " .. file.path .. ": skipped malformed lines 8, 9, 10, 11" },
      helper.messages(logger.lines, "warning")
    )
  end)

  it("keeps malformed line text out of the log", function()
    local file = open("alice@example.test|" .. HASH .. "\nsecret-looking " .. HASH .. "\n")

    file:lookup(helper.USER, logger)

    for _, line in ipairs(logger.lines) do
      assert.is_not.contains_text(line.message, HASH)
    end
  end)

  it("lists at most ten malformed lines", function()
    local lines = {}
    for index = 1, 12 do
      lines[index] = "malformed" .. index
    end
    local file = open(table.concat(lines, "\n"))

    file:lookup(helper.USER, logger)

    assert.same(
      { "Account list " .. file.path .. ": skipped malformed lines 1, 2, 3, 4, 5, 6, 7, 8, 9, 10" },
      helper.messages(logger.lines, "warning")
    )
  end)

  it("warns about nothing in a clean file", function()
    local file = open("# accounts\n\nalice@example.test|" .. HASH .. "\n")

    file:lookup(helper.USER, logger)

    assert.same({}, helper.messages(logger.lines, "warning"))
  end)

  it("loads an empty file as no accounts", function()
    local file = open("")

    local result = file:lookup(helper.USER, logger)

    assert.equal("missing", result.status)
    assert.same({ "Account list loaded from " .. file.path .. ": 0 accounts" }, helper.messages(logger.lines, "info"))
  end)

  it("counts a repeated name once", function()
    local file = open("alice@example.test|a\nALICE@example.test|b\nbob@example.test|c\n")

    file:lookup(helper.USER, logger)

    assert.contains_text(helper.messages(logger.lines, "info")[1], ": 2 accounts")
  end)

  it("reads CRLF line endings", function()
    local file = open("alice@example.test|" .. HASH .. "\r\nbob@example.test|" .. HASH .. "\r\n")

    local alice = file:lookup("alice@example.test", logger)
    local bob = file:lookup("bob@example.test", logger)

    assert.equal("found", alice.status)
    assert.equal("found", bob.status)
    assert.same({}, helper.messages(logger.lines, "warning"))
  end)

  it("exposes its path as location", function()
    local path = helper.temp_file("alice@example.test|x\n")

    local file = helper.new(accounts.PostfixAccountsFile, path)

    assert.equal(path, file.location)
  end)
end)

describe("accounts.PasswdFile parsing", function()
  local accounts
  local logger

  before_each(function()
    accounts = helper.load_bridge().accounts
    logger = helper.logger()
  end)

  after_each(helper.remove_temp_files)

  local text = table.concat({
    "# Dovecot passwd-file",
    "alice@example.test:{PLAIN}x:1000:1000::/home/alice::",
    "Bob@Example.TEST:" .. HASH,
    "carol:{CRYPT}x",
    "  dave@example.test:x  ",
    "erin@example.test:x\r",
    "frank@example.test:",
    "grace@example.test",
    "heidi@example.test|" .. HASH,
    ":x",
    "ivan smith:x",
    "",
  }, "\n")

  local lookups = {
    { name = "alice@example.test", status = "found" },
    { name = "bob@example.test", status = "found" },
    { name = "carol", status = "found" },
    { name = "CAROL", status = "found" },
    { name = "dave@example.test", status = "found" },
    { name = "erin@example.test", status = "found" },
    { name = "frank@example.test", status = "found" },
    { name = "grace@example.test", status = "missing" },
    { name = "heidi@example.test", status = "missing" },
    { name = "ivan", status = "missing" },
    { name = "ivan smith", status = "missing" },
    { name = "{PLAIN}x", status = "missing" },
  }
  for _, case in ipairs(lookups) do
    it(("reports %q as %s"):format(case.name, case.status), function()
      local file = helper.new(accounts.PasswdFile, helper.temp_file(text))

      local result = file:lookup(case.name, logger)

      assert.equal(case.status, result.status)
    end)
  end

  it("warns about malformed line numbers", function()
    local file = helper.new(accounts.PasswdFile, helper.temp_file(text))

    file:lookup(helper.USER, logger)

    assert.same(
      { "Account list " .. file.path .. ": skipped malformed lines 8, 9, 10, 11" },
      helper.messages(logger.lines, "warning")
    )
  end)

  it("logs the number of accounts", function()
    local file = helper.new(accounts.PasswdFile, helper.temp_file(text))

    file:lookup(helper.USER, logger)

    assert.same({ "Account list loaded from " .. file.path .. ": 6 accounts" }, helper.messages(logger.lines, "info"))
  end)
end)

describe("account file half-written", function()
  local accounts
  local logger

  before_each(function()
    accounts = helper.load_bridge().accounts
    logger = helper.logger()
  end)

  after_each(helper.remove_temp_files)

  -- Each case is a file cut off while the name of its last entry was being written. The last
  -- line lacks its separator, so it must not count, not even as the name it happens to spell.
  local cases = {
    { class = "PostfixAccountsFile", text = "alice@example.test|" .. HASH .. "\nbob@example.test", name = "bob@example.test" },
    { class = "PostfixAccountsFile", text = "alice@example.test|" .. HASH .. "\nbob@example.te", name = "bob@example.te" },
    { class = "PostfixAccountsFile", text = "alice@example.test|" .. HASH .. "\r\nbob@example.test\r", name = "bob@example.test" },
    { class = "PasswdFile", text = "alice@example.test:x\nbob@example.test", name = "bob@example.test" },
    { class = "PasswdFile", text = "alice@example.test:x\nbob", name = "bob" },
  }
  for _, case in ipairs(cases) do
    it(("skips %s last line %q"):format(case.class, case.name), function()
      local file = helper.new(accounts[case.class], helper.temp_file(case.text))

      local cut = file:lookup(case.name, logger)
      local complete = file:lookup(helper.USER, logger)

      assert.equal("missing", cut.status)
      assert.equal("found", complete.status)
      assert.same(
        { "Account list " .. file.path .. ": skipped malformed lines 2" },
        helper.messages(logger.lines, "warning")
      )
    end)
  end
end)

describe("account file line breaks in names", function()
  local accounts
  local logger

  before_each(function()
    accounts = helper.load_bridge().accounts
    logger = helper.logger()
  end)

  after_each(helper.remove_temp_files)

  it("never matches across two entries", function()
    -- Both names and their joined form share one bucket of the name set, so the bucket reads
    -- "\nfirst\nsecond\n" and only the line break check stops the joined name from matching.
    local first, second = helper.names_sharing_bucket(64)
    local file = helper.new(accounts.PostfixAccountsFile, helper.accounts_file({ first, second }))

    local joined = file:lookup(first .. "\n" .. second, logger)
    local alone = file:lookup(second, logger)

    assert.equal("missing", joined.status)
    assert.equal("found", alone.status)
  end)

  local names = {
    { name = "trailing LF", value = helper.USER .. "\n" },
    { name = "leading LF", value = "\n" .. helper.USER },
    { name = "trailing CR", value = helper.USER .. "\r" },
    { name = "CR LF inside", value = "alice\r\n@example.test" },
    { name = "NUL inside", value = "alice\0@example.test" },
  }
  for _, case in ipairs(names) do
    it(("reports name with %s missing"):format(case.name), function()
      local file = helper.new(accounts.PostfixAccountsFile, helper.accounts_file({ helper.USER }))

      local result = file:lookup(case.value, logger)

      assert.equal("missing", result.status)
    end)
  end
end)

describe("account file reloading", function()
  local accounts
  local path
  local file
  local logger
  local real_time
  local real_open
  local opens

  local function lookup(name)
    return file:lookup(name, logger).status
  end

  local function reload_lines()
    return helper.messages(logger.lines, "info")
  end

  -- Moves os.time() ten seconds ahead, so the file's times fall outside the one-second window
  -- in which a same-size rewrite could go unnoticed, and the file counts as settled.
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
    path = helper.accounts_file({ helper.USER })
    file = helper.new(accounts.PostfixAccountsFile, path)
    logger = helper.logger()
    real_time = os.time
    real_open = io.open
    opens = 0
    io.open = function(name, ...)
      if name == path then
        opens = opens + 1
      end
      return real_open(name, ...)
    end
  end)

  after_each(function()
    os.time = real_time
    io.open = real_open
    helper.remove_temp_files()
  end)

  it("reads the file on first lookup", function()
    assert.equal("found", lookup(helper.USER))
    assert.equal(1, opens)
  end)

  it("skips rereading a settled file", function()
    advance_clock()

    lookup(helper.USER)
    lookup(helper.USER)
    lookup("bob@example.test")

    assert.equal(1, opens)
  end)

  it("rereads a file changed this second", function()
    lookup(helper.USER)
    lookup(helper.USER)

    assert.equal(2, opens)
  end)

  it("logs one reload per change", function()
    lookup(helper.USER)
    lookup(helper.USER)
    lookup("bob@example.test")
    helper.rewrite(path, "alice@example.test|x\nbob@example.test|x\n")
    lookup(helper.USER)
    lookup("bob@example.test")

    assert.same({
      "Account list loaded from " .. path .. ": 1 accounts",
      "Account list loaded from " .. path .. ": 2 accounts",
    }, reload_lines())
  end)

  it("logs one reload of a settled file", function()
    advance_clock()

    lookup(helper.USER)
    lookup(helper.USER)

    assert.equal(1, #reload_lines())
  end)

  it("warns once about malformed lines", function()
    helper.rewrite(path, "alice@example.test|x\nmalformed\n")

    lookup(helper.USER)
    lookup(helper.USER)
    lookup(helper.USER)

    assert.equal(1, #helper.messages(logger.lines, "warning"))
  end)

  it("reloads a file replaced by rename", function()
    advance_clock()
    assert.equal("found", lookup(helper.USER))
    local replacement = helper.accounts_file({ "bob@example.test" })

    assert(os.rename(replacement, path))

    assert.equal("found", lookup("bob@example.test"))
    assert.equal("missing", lookup(helper.USER))
  end)

  it("reloads a same-size rename", function()
    advance_clock()
    assert.equal("found", lookup(helper.USER))
    local replacement = helper.accounts_file({ "carol@example.test" })

    assert(os.rename(replacement, path))

    assert.equal("found", lookup("carol@example.test"))
    assert.equal("missing", lookup(helper.USER))
  end)

  it("reloads a file rewritten with another size", function()
    advance_clock()
    assert.equal("found", lookup(helper.USER))

    helper.rewrite(path, "alice@example.test|x\nbob@example.test|{SHA512-CRYPT}$6$salt$longer-hash\n")

    assert.equal("found", lookup("bob@example.test"))
    assert.equal(2, #reload_lines())
  end)

  it("reloads a same-size rewrite within a second", function()
    helper.rewrite(path, "alice@example.test|hash\n")
    assert.equal("found", lookup(helper.USER))

    helper.rewrite(path, "carol@example.test|hash\n")

    assert.equal("found", lookup("carol@example.test"))
    assert.equal("missing", lookup(helper.USER))
  end)

  local unreadable = {
    {
      name = "removed",
      make = function()
        os.remove(path)
      end,
    },
    {
      name = "replaced by a directory",
      make = function()
        os.remove(path)
        assert(lfs.mkdir(path))
      end,
      undo = function()
        assert(lfs.rmdir(path))
      end,
    },
  }
  for _, case in ipairs(unreadable) do
    it(("reports file %s as unavailable"):format(case.name), function()
      lookup(helper.USER)
      case.make()

      local result = file:lookup(helper.USER, logger)
      if case.undo then case.undo() end

      assert.equal("unavailable", result.status)
      assert.contains_text(result.reason, "cannot read " .. path)
    end)

    it(("recovers after file %s"):format(case.name), function()
      lookup(helper.USER)
      case.make()
      local unavailable = lookup(helper.USER)
      if case.undo then case.undo() end

      helper.rewrite(path, "alice@example.test|hash\n")

      assert.equal("unavailable", unavailable)
      assert.equal("found", lookup(helper.USER))
    end)
  end

  it("reports a missing file as unavailable", function()
    local missing = helper.new(accounts.PostfixAccountsFile, helper.temp_path())

    local result = missing:lookup(helper.USER, logger)

    assert.equal("unavailable", result.status)
  end)

  it("logs nothing for an unavailable file", function()
    os.remove(path)

    file:lookup(helper.USER, logger)

    assert.same({}, logger.lines)
  end)
end)

describe("account file check", function()
  local accounts

  before_each(function()
    accounts = helper.load_bridge().accounts
  end)

  after_each(helper.remove_temp_files)

  it("returns nil for a readable file", function()
    local file = helper.new(accounts.PasswdFile, helper.temp_file("alice:x\n"))

    assert.is_nil(file:check())
  end)

  it("names a missing file", function()
    local path = helper.temp_path()
    local file = helper.new(accounts.PostfixAccountsFile, path)

    local problem = file:check()

    assert.is_string(problem)
    assert.contains_text(problem, "cannot read " .. path)
  end)

  it("names a directory", function()
    local path = helper.temp_dir()
    local file = helper.new(accounts.PostfixAccountsFile, path)

    local problem = file:check()

    assert.contains_text(problem, "cannot read " .. path)
  end)
end)
