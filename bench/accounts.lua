-- Benchmark of the file account sources: load time, lookup rate and Lua heap for a
-- postfix-accounts.cf of 100,000 mailboxes. Run with `make bench` from the repository root.
-- Numbers are CPU time of this process (os.clock), so other load on the machine matters little.

dovecot = { auth = {} }
local bridge = dofile("lua-out/oauth2-bridge.lua")

local ACCOUNTS = tonumber(os.getenv("BENCH_ACCOUNTS") or "100000")
local LOOKUPS = 200000

local log = {}
for _, level in ipairs({ "debug", "info", "warning", "error" }) do
  log[level] = function() end
end

local function write_accounts(path)
  local file = assert(io.open(path, "w"))
  for index = 1, ACCOUNTS do
    file:write(("user%06d@example.test|{SHA512-CRYPT}$6$bench$%064d\n"):format(index, index))
  end
  file:close()
end

local path = os.tmpname()
write_accounts(path)
-- A file changed within the last second is re-read on every lookup, so let it settle.
os.execute("sleep 2")
collectgarbage("collect")
local heap_before = collectgarbage("count")
local gc_started = os.clock()
for _ = 1, 100 do
  collectgarbage("collect")
end
local gc_empty_ms = (os.clock() - gc_started) * 1000 / 100

local source = bridge.accounts.PostfixAccountsFile.new and bridge.accounts.PostfixAccountsFile.new(path)
if source == nil then
  source = setmetatable({}, bridge.accounts.PostfixAccountsFile.prototype)
  source:____constructor(path)
end

local started = os.clock()
assert(source:check() == nil, "the account file could not be loaded")
local load_seconds = os.clock() - started
collectgarbage("collect")
local heap_after = collectgarbage("count")

started = os.clock()
local found = 0
for index = 1, LOOKUPS do
  local name = ("user%06d@example.test"):format(index % (ACCOUNTS * 2))
  if source:lookup(name, log).status == "found" then
    found = found + 1
  end
end
local lookup_seconds = os.clock() - started
os.remove(path)

print(("accounts file: %d accounts loaded in %.1f ms"):format(ACCOUNTS, load_seconds * 1000))
print(("accounts file: %d lookups (stat + table access) in %.1f ms, %.1f us each, %d found"):format(
  LOOKUPS, lookup_seconds * 1000, lookup_seconds * 1e6 / LOOKUPS, found))
print(("accounts file: Lua heap grows by %.1f MiB for the loaded list"):format((heap_after - heap_before) / 1024))

collectgarbage("collect")
started = os.clock()
for _ = 1, 100 do
  collectgarbage("collect")
end
print(("accounts file: a full garbage collection takes %.3f ms with the list loaded, %.3f ms without"):format(
  (os.clock() - started) * 1000 / 100, gc_empty_ms))

-- For comparison: the same names as keys of a plain Lua table, one string object each.
source = nil
collectgarbage("collect")
local plain = {}
for index = 1, ACCOUNTS do
  plain[("user%06d@example.test"):format(index)] = true
end
collectgarbage("collect")
started = os.clock()
for _ = 1, 100 do
  collectgarbage("collect")
end
print(("plain table:   a full garbage collection takes %.3f ms with the same names as table keys"):format(
  (os.clock() - started) * 1000 / 100))
