-- Shared fakes and helpers for the unit specs. The fakes stand in for the Dovecot boundary (the
-- `dovecot` global and auth requests that record their log lines), the HTTP transport, account
-- sources and the lualdap module. The helpers provide identity provider fixtures, temporary
-- files and assertions.
--
-- busted loads this file once with dofile, before any spec file. It registers itself in
-- package.loaded, so spec files get the same table with require("spec.unit.helper").

local cjson = require("cjson")
local lfs = require("lfs")
local luassert = require("luassert")
local say = require("say")

local helper = {}

--- The bundle under test. OAUTH2_BRIDGE_BUNDLE can name another build, such as a scratch build of a fix.
helper.BUNDLE = os.getenv("OAUTH2_BRIDGE_BUNDLE") or "lua-out/oauth2-bridge.lua"
helper.FIXTURE_DIR = "spec/fixtures/idp-shapes"

--- "Now" for the fixtures: 2026-01-01T00:00:00Z, in seconds since the epoch.
helper.NOW = 1767225600

--- A valid RFC 6750 b64token that occurs nowhere else, so a log line that contains it is a leak.
helper.TOKEN = "spec-token.Qx7Zr9Wm4Kp2~Lv8_Ny3/Tb6+Hd5=="
--- helper.TOKEN form-encoded (WHATWG application/x-www-form-urlencoded), as a URL or a form
--- body carries it.
helper.TOKEN_FORM = "spec-token.Qx7Zr9Wm4Kp2%7ELv8_Ny3%2FTb6%2BHd5%3D%3D"
--- A client secret that occurs nowhere else, for the same reason.
helper.CLIENT_SECRET = "spec-client-secret-Vr4Ux8Zq"
--- A client secret with ":", "+", "%", "/" and a space, the characters that RFC 6749 section
--- 2.3.1 encoding changes, and its form-encoded spelling.
helper.SPECIAL_SECRET = "Vr4:U+x8%2F/Zq w"
helper.SPECIAL_SECRET_FORM = "Vr4%3AU%2Bx8%252F%2FZq+w"

--- An LDAP bind password that occurs nowhere else, for the same reason.
helper.LDAP_PASSWORD = "spec-ldap-password-Jw5Tq2Hn"

helper.USER = "alice@example.test"
helper.USERINFO_URL = "https://idp.example.test/userinfo"

-- The values of enum passdb_result in Dovecot's src/auth/passdb.h. The specs only need them to be
-- distinct.
dovecot = {
  auth = {
    PASSDB_RESULT_INTERNAL_FAILURE = -1,
    PASSDB_RESULT_SCHEME_NOT_AVAILABLE = -2,
    PASSDB_RESULT_USER_UNKNOWN = -3,
    PASSDB_RESULT_USER_DISABLED = -4,
    PASSDB_RESULT_PASS_EXPIRED = -5,
    PASSDB_RESULT_NEXT = -6,
    PASSDB_RESULT_PASSWORD_MISMATCH = 0,
    PASSDB_RESULT_OK = 1,
  },
}

--- Lines logged through the fake dovecot.i_* functions, as { level = ..., message = ... }.
helper.process_log = {}
for _, level in ipairs({ "debug", "info", "warning", "error" }) do
  dovecot["i_" .. level] = function(message)
    helper.process_log[#helper.process_log + 1] = { level = level, message = message }
  end
end

--- Maps a result name ("OK", "USER_UNKNOWN", ...) to the fake dovecot.auth number.
function helper.result_code(name)
  local code = dovecot.auth["PASSDB_RESULT_" .. name]
  assert(code ~= nil, "unknown passdb result " .. tostring(name))
  return code
end

--- Loads a fresh copy of the bundle, with its own module state.
function helper.load_bridge()
  return dofile(helper.BUNDLE)
end

--- Constructs an instance of a class compiled by TypeScriptToLua, as its __TS__New does.
function helper.new(class, ...)
  local instance = setmetatable({}, class.prototype)
  instance:____constructor(...)
  return instance
end

-- Log recording ---------------------------------------------------------------------------

-- Every list of recorded log lines since the last helper.assert_logs_clean.
local recorded_lists = {}

local function recorder(lines, level)
  return function(_, message)
    lines[#lines + 1] = { level = level, message = message }
  end
end

local function new_lines()
  local lines = {}
  recorded_lists[#recorded_lists + 1] = lines
  return lines
end

--- Returns a fake Dovecot auth request. Its log methods record into `req.lines`.
function helper.request(fields)
  local req = {
    user = helper.USER,
    service = "imap",
    mechanism = "XOAUTH2",
    remote_ip = "127.0.0.1",
    lines = new_lines(),
  }
  for key, value in pairs(fields or {}) do
    req[key] = value
  end
  req.log_debug = recorder(req.lines, "debug")
  req.log_info = recorder(req.lines, "info")
  req.log_warning = recorder(req.lines, "warning")
  req.log_error = recorder(req.lines, "error")
  return req
end

--- Returns a fake Logger for passdb.verifyLogin. Its methods record into `logger.lines`.
function helper.logger()
  local lines = new_lines()
  return {
    lines = lines,
    debug = recorder(lines, "debug"),
    info = recorder(lines, "info"),
    warning = recorder(lines, "warning"),
    error = recorder(lines, "error"),
  }
end

--- Returns the messages of the recorded lines at one level, in order.
function helper.messages(lines, level)
  local found = {}
  for _, line in ipairs(lines) do
    if line.level == level then
      found[#found + 1] = line.message
    end
  end
  return found
end

-- Fake HTTP transport ---------------------------------------------------------------------

--- Returns a fake for the Bridge.transport dependency. `response` is what every call returns, or a
--- function that builds it from the request table. Each request is recorded in `calls`, and
--- `transport.send` is the function to put into the Bridge.
function helper.transport(response)
  local transport = { calls = {} }
  function transport.send(request)
    transport.calls[#transport.calls + 1] = request
    if type(response) == "function" then
      return response(request)
    end
    return response
  end
  return transport
end

--- Returns a response function for helper.transport that serves each request from `routes`, a
--- table of URL prefix -> response (or function of the request). The longest matching prefix
--- wins, and a URL that matches no prefix gets HTTP 404.
function helper.routes(routes)
  return function(request)
    local best
    for prefix in pairs(routes) do
      if request.url.text:sub(1, #prefix) == prefix and (best == nil or #prefix > #best) then
        best = prefix
      end
    end
    if best == nil then
      return { ok = true, status = 404, body = "" }
    end
    local response = routes[best]
    if type(response) == "function" then
      return response(request)
    end
    return response
  end
end

--- Returns a Bridge for passdb.verifyLogin: `settings`, the postfix-accounts file at
--- `account_path` unless `options.accounts` gives another account source, the fake transport's
--- send function, an optional Discovery, an optional TokenCache with its digest seed, and a
--- clock that reads helper.NOW unless `now` is given.
function helper.context(bundle, settings, account_path, transport, options)
  options = options or {}
  return {
    settings = settings,
    accounts = options.accounts or helper.new(bundle.accounts.PostfixAccountsFile, account_path),
    transport = transport.send,
    discovery = options.discovery,
    cache = options.cache,
    digestSeed = options.digestSeed or { 0x5eed, 0x5eed2 },
    now = options.now or function()
      return helper.NOW
    end,
  }
end

--- Returns a transport response (HTTP 200 unless `status` is given) whose body is `claims`
--- encoded as JSON.
function helper.json_response(claims, status)
  return { ok = true, status = status or 200, body = cjson.encode(claims) }
end

--- Returns fakes of luasocket ("socket") and luasec ("ssl") for the bundle's own HTTP client,
--- with a scripted server behind them at the socket level. The server parses each request that
--- the client sends and calls `reply(request)`, which returns one of three things. A status and
--- a list of body chunks become a reply, with Content-Length for one chunk and chunked for more,
--- plus the headers of an optional third value, a table of names and values. Nil and an error
--- make the client's next read return that error. A raised error is raised by the client's send.
---
--- A request is { method, target, url, head, headers, body, connection }: `url` is rebuilt from
--- the scheme, the Host header and the target, `head` is the request line and headers as sent,
--- `headers` has lower-case names and `connection` is the number of the TCP connection. Requests
--- are recorded in `requests`, connections in `connections` (with host, port and `closed`), and
--- the parameters of each ssl.wrap call in `tls`.
function helper.fake_network(reply)
  local real_socket = require("socket")
  local fake = { requests = {}, connections = {}, tls = {} }
  local state_of = setmetatable({}, { __mode = "k" })

  local function respond(connection, status, chunks, extra_headers)
    local head = { "HTTP/1.1 " .. status .. " Spec", "content-type: application/json" }
    for name, value in pairs(extra_headers or {}) do
      head[#head + 1] = name .. ": " .. value
    end
    local body
    if #chunks == 1 then
      head[#head + 1] = "content-length: " .. #chunks[1]
      body = chunks[1]
    else
      head[#head + 1] = "transfer-encoding: chunked"
      local parts = {}
      for _, chunk in ipairs(chunks) do
        parts[#parts + 1] = ("%x\r\n%s\r\n"):format(#chunk, chunk)
      end
      body = table.concat(parts) .. "0\r\n\r\n"
    end
    connection.outbound = connection.outbound .. table.concat(head, "\r\n") .. "\r\n\r\n" .. body
  end

  -- Takes each complete request off the front of the connection's inbound bytes.
  local function serve(connection)
    while true do
      local head_end = connection.inbound:find("\r\n\r\n", 1, true)
      if head_end == nil then
        return
      end
      local head = connection.inbound:sub(1, head_end - 1)
      local headers = {}
      for name, value in head:gmatch("\r\n([^:\r\n]+):%s*([^\r\n]*)") do
        headers[name:lower()] = value
      end
      local length = tonumber(headers["content-length"] or "0")
      local body_start = head_end + 4
      if #connection.inbound < body_start + length - 1 then
        return
      end
      local method, target = head:match("^(%u+) (%S+) HTTP/1%.1")
      local request = {
        method = method,
        target = target,
        url = ("%s://%s%s"):format(connection.tls and "https" or "http", headers.host or "", target or ""),
        head = head,
        headers = headers,
        body = connection.inbound:sub(body_start, body_start + length - 1),
        connection = connection.number,
      }
      connection.inbound = connection.inbound:sub(body_start + length)
      fake.requests[#fake.requests + 1] = request

      local status, chunks, extra_headers = reply(request)
      if status == nil then
        connection.failure = chunks
      else
        respond(connection, status, chunks, extra_headers)
      end
    end
  end

  local function read(connection, pattern)
    if connection.failure ~= nil then
      return nil, connection.failure, ""
    end
    local size
    if pattern == "*l" then
      local line_end = connection.outbound:find("\n", 1, true)
      if line_end == nil then
        size = nil
      else
        local line = connection.outbound:sub(1, line_end - 1):gsub("\r", "")
        connection.outbound = connection.outbound:sub(line_end + 1)
        return line
      end
    elseif #connection.outbound >= pattern then
      size = pattern
    end
    if size == nil then
      -- The scripted server has sent all it will: the connection ends here.
      local partial = connection.outbound
      connection.outbound = ""
      return nil, "closed", partial
    end
    local data = connection.outbound:sub(1, size)
    connection.outbound = connection.outbound:sub(size + 1)
    return data
  end

  local function new_tcp()
    local connection = { inbound = "", outbound = "", closed = false, tls = false }
    local sock = {}
    state_of[sock] = connection

    function sock.settimeout()
      return 1
    end
    function sock.connect(_, host, port)
      connection.number = #fake.connections + 1
      connection.host = host
      connection.port = port
      fake.connections[connection.number] = connection
      return 1
    end
    function sock.send(_, data)
      connection.inbound = connection.inbound .. data
      serve(connection)
      return #data
    end
    function sock.receive(_, pattern)
      return read(connection, pattern)
    end
    function sock.dirty()
      return false
    end
    function sock.close()
      connection.closed = true
      return 1
    end
    return sock
  end

  fake.socket = {
    gettime = real_socket.gettime,
    sleep = real_socket.sleep,
    tcp = new_tcp,
  }
  -- What luasocket's select reports for the client's idle connection: readable once the server
  -- has sent bytes that the client did not read.
  function fake.socket.select(receivers)
    local readable = {}
    for _, sock in ipairs(receivers) do
      local connection = state_of[sock]
      if connection ~= nil and (#connection.outbound > 0 or connection.failure ~= nil) then
        readable[#readable + 1] = sock
        readable[sock] = true
      end
    end
    return readable, {}
  end

  fake.ssl = {}
  function fake.ssl.wrap(sock, params)
    local connection = state_of[sock]
    connection.tls = true
    fake.tls[#fake.tls + 1] = params
    local conn = {}
    state_of[conn] = connection
    function conn.sni(_, name)
      connection.sni = name
    end
    function conn.dohandshake()
      return true
    end
    function conn.getpeercertificate()
      return {
        extensions = function()
          return { ["2.5.29.17"] = { dNSName = { connection.host } } }
        end,
      }
    end
    for _, name in ipairs({ "settimeout", "send", "receive", "dirty", "close" }) do
      conn[name] = function(_, ...)
        return sock[name](sock, ...)
      end
    end
    return conn
  end

  return fake
end

--- Loads a fresh bundle whose HTTP client uses the fakes of helper.fake_network, and puts the
--- real modules back.
function helper.load_bridge_with_network(fake)
  local original_socket, original_ssl = package.loaded["socket"], package.loaded["ssl"]
  require("socket.url")
  package.loaded["socket"], package.loaded["ssl"] = fake.socket, fake.ssl
  local ok, bridge = pcall(dofile, helper.BUNDLE)
  package.loaded["socket"], package.loaded["ssl"] = original_socket, original_ssl
  assert(ok, bridge)
  return bridge
end

-- Scripted HTTP server ---------------------------------------------------------------------

helper.HTTP_SERVER_SCRIPT = "spec/unit/support/http-server.mjs"

local function shell_quote(text)
  return "'" .. text:gsub("'", "'\\''") .. "'"
end

--- Starts spec/unit/support/http-server.mjs in a node process on a free port of 127.0.0.1, and
--- returns { port, pid, events, stop }. `events()` returns the server's events so far as tables
--- ({ event = "connection" | "request" | "drop" | "idle-close" | "close", connection, ... }),
--- and `stop()` ends the process by its PID. With `idle_close_ms`, the server closes a
--- connection that stays idle that long after a reply.
function helper.start_http_server(idle_close_ms)
  local socket = require("socket")
  local events_path = helper.temp_file("")
  local output_path = helper.temp_file("")
  local command = ("node %s %s %d >%s 2>&1 & echo $!"):format(
    shell_quote(helper.HTTP_SERVER_SCRIPT), shell_quote(events_path), idle_close_ms or 0, shell_quote(output_path))
  local pipe = assert(io.popen(command, "r"))
  local pid = tonumber(pipe:read("l"))
  pipe:close()
  assert(pid ~= nil, "the shell did not report the server's PID")

  local server = { pid = pid }
  function server.stop()
    os.execute(("kill %d 2>/dev/null"):format(pid))
  end
  function server.events()
    local events = {}
    for line in io.lines(events_path) do
      events[#events + 1] = cjson.decode(line)
    end
    return events
  end

  -- node needs about 50 ms to start, but far longer on a loaded machine; give it 20 s.
  for _ = 1, 2000 do
    local port = helper.read_file(output_path):match("READY (%d+)")
    if port ~= nil then
      server.port = tonumber(port)
      return server
    end
    socket.sleep(0.01)
  end
  server.stop()
  error("the HTTP server did not start: " .. helper.read_file(output_path))
end

-- Fake account sources -------------------------------------------------------------------

--- Returns a fake AccountSource whose lookups return `result` (a table such as
--- { status = "disabled" }) or, when `result` is a function, what it returns for the name. Each
--- lookup is recorded in `lookups` as { name = ..., log = ... }.
function helper.account_source(result, location)
  local source = { location = location or "spec account source", lookups = {} }
  function source.lookup(self, name, log)
    self.lookups[#self.lookups + 1] = { name = name, log = log }
    if type(result) == "function" then
      return result(name)
    end
    return result
  end
  function source.check()
    return nil
  end
  return source
end

-- Fake lualdap ----------------------------------------------------------------------------

--- Returns a fake of the lualdap module (LuaLDAP 1.3) for the LDAP account source.
---
--- `fake.open(uri)` decides the outcome of each open_simple. When it returns nil, the call
--- connects. When it returns a string, open_simple returns nil and that string, and when it
--- raises, so does open_simple. `fake.reply(request, connection)` scripts each search by
--- returning a list. Each string in it is an entry DN, an { error = message } item makes the
--- iterator return nil and the message, and the end of the list ends the search. It may raise,
--- as LuaLDAP does for a bad filter. open_simple calls are recorded in `opens`, searches in
--- `searches` (a copy of the request plus the connection's number), and connections in
--- `connections` (with `closed`).
function helper.fake_lualdap()
  local fake = { opens = {}, searches = {}, connections = {} }
  fake.open = function()
    return nil
  end
  fake.reply = function()
    return {}
  end

  local function copy(request)
    local attrs
    if request.attrs ~= nil then
      attrs = {}
      for index, name in ipairs(request.attrs) do
        attrs[index] = name
      end
    end
    return {
      base = request.base,
      scope = request.scope,
      filter = request.filter,
      attrs = attrs,
      attrsonly = request.attrsonly,
      sizelimit = request.sizelimit,
      timeout = request.timeout,
    }
  end

  local function search(connection, request)
    local record = copy(request)
    record.connection = connection.number
    fake.searches[#fake.searches + 1] = record
    if connection.closed then
      error("LuaLDAP: LDAP connection is closed", 2)
    end
    local results = fake.reply(record, connection)
    local index = 0
    return function()
      index = index + 1
      local item = results[index]
      if item == nil then
        return nil
      end
      if type(item) == "table" then
        return nil, item.error
      end
      return item, {}
    end
  end

  function fake.open_simple(uri, who, password, starttls)
    fake.opens[#fake.opens + 1] = { uri = uri, who = who, password = password, starttls = starttls }
    local problem = fake.open(uri)
    if problem ~= nil then
      return nil, problem
    end
    local connection = { number = #fake.connections + 1, uri = uri, closed = false }
    connection.search = search
    function connection.close(self)
      self.closed = true
      return 1
    end
    fake.connections[#fake.connections + 1] = connection
    return connection
  end

  return fake
end

--- Puts `fake` into package.loaded["lualdap"], where the bundle's lazy require finds it, and
--- returns a function that puts the previous module back.
function helper.install_lualdap(fake)
  local previous = package.loaded["lualdap"]
  package.loaded["lualdap"] = fake
  return function()
    package.loaded["lualdap"] = previous
  end
end

-- Fixtures --------------------------------------------------------------------------------

--- Returns the text of spec/fixtures/idp-shapes/NAME.json.
function helper.fixture_text(name)
  local path = ("%s/%s.json"):format(helper.FIXTURE_DIR, name)
  local file = assert(io.open(path, "r"))
  local text = file:read("a")
  file:close()
  return text
end

--- Returns the fixture names (without .json), sorted.
function helper.fixture_names()
  local names = {}
  for entry in lfs.dir(helper.FIXTURE_DIR) do
    local name = entry:match("^(.+)%.json$")
    if name then
      names[#names + 1] = name
    end
  end
  table.sort(names)
  return names
end

--- Returns a transport response that serves one fixture as an HTTP 200 body.
function helper.fixture_response(name)
  return { ok = true, status = 200, body = helper.fixture_text(name) }
end

--- Returns a fixture decoded into a table, with `overrides` applied. An override of cjson.null
--- encodes as JSON null again.
function helper.fixture_claims(name, overrides)
  local claims = cjson.decode(helper.fixture_text(name))
  for key, value in pairs(overrides or {}) do
    claims[key] = value
  end
  return claims
end

-- Temporary files -------------------------------------------------------------------------

local temp_paths = {}

local function write(path, text)
  local file = assert(io.open(path, "wb"))
  assert(file:write(text))
  assert(file:close())
end

--- Creates a temporary file with `text` and returns its path. remove_temp_files deletes it.
function helper.temp_file(text)
  local path = os.tmpname()
  temp_paths[#temp_paths + 1] = path
  write(path, text or "")
  return path
end

--- Returns a fresh temporary path that does not exist yet. remove_temp_files deletes it.
function helper.temp_path()
  local path = helper.temp_file("")
  os.remove(path)
  return path
end

--- Creates a temporary directory and returns its path. remove_temp_files deletes it.
function helper.temp_dir()
  local path = helper.temp_path()
  assert(lfs.mkdir(path))
  return path
end

--- Overwrites a file in place (same inode).
function helper.rewrite(path, text)
  write(path, text)
end

--- Deletes every file and directory made by the temp helpers.
function helper.remove_temp_files()
  for index = #temp_paths, 1, -1 do
    local path = temp_paths[index]
    if lfs.attributes(path, "mode") == "directory" then
      lfs.rmdir(path)
    else
      os.remove(path)
    end
    temp_paths[index] = nil
  end
end

--- Writes a postfix-accounts.cf with one `address|hash` line per address.
function helper.accounts_file(addresses)
  local lines = {}
  for _, address in ipairs(addresses) do
    lines[#lines + 1] = address .. "|{SHA512-CRYPT}$6$spec$hash"
  end
  return helper.temp_file(table.concat(lines, "\n") .. "\n")
end

--- Returns settings text of `lines` and an account_file line, for settings without the userinfo
--- defaults of helper.settings_text.
function helper.config_text(account_file, lines)
  local all = { "account_file = " .. account_file }
  for _, line in ipairs(lines) do
    all[#all + 1] = line
  end
  return table.concat(all, "\n") .. "\n"
end

--- Returns settings text for a userinfo endpoint and an account file, plus `extra` lines.
function helper.settings_text(account_file, extra)
  local lines = {
    "introspection_url = " .. helper.USERINFO_URL,
    "account_file = " .. account_file,
    "client_id = roundcube",
    "client_secret = " .. helper.CLIENT_SECRET,
  }
  for _, line in ipairs(extra or {}) do
    lines[#lines + 1] = line
  end
  return table.concat(lines, "\n") .. "\n"
end

-- Setup script ----------------------------------------------------------------------------

helper.SETUP_SCRIPT = "dovecot/oauth2-bridge-setup.sh"

--- Returns the whole text of a file.
function helper.read_file(path)
  local file = assert(io.open(path, "r"))
  local text = file:read("a")
  file:close()
  return text
end

--- Runs the docker-mailserver setup script with only `variables` in its environment. Returns
--- whether it exited with 0, the settings file it wrote (nil when none) and its stdout and stderr.
function helper.run_setup(variables)
  local output = helper.temp_path()
  local printed = helper.temp_path()
  local assignments = {}
  for name, value in pairs(variables) do
    assignments[#assignments + 1] = ("%s=%s"):format(name, shell_quote(value))
  end
  local command = ("env -i PATH=/usr/bin:/bin %s bash %s %s >%s 2>&1"):format(
    table.concat(assignments, " "), helper.SETUP_SCRIPT, output, printed)
  local ok = os.execute(command)
  local file = io.open(output, "r")
  local text = file and file:read("a")
  if file then file:close() end
  return ok, text, helper.read_file(printed)
end

-- Name sets -------------------------------------------------------------------------------

--- Returns the NameSet class of a loaded bundle. The entry module does not export the name-set
--- module, so the class is taken from the empty NameSet that every account file starts with.
function helper.name_set_class(bundle)
  if bundle.nameSet ~= nil then
    return bundle.nameSet.NameSet
  end
  local file = helper.new(bundle.accounts.PostfixAccountsFile, "unused")
  return getmetatable(file.names).constructor
end

--- FNV-1a over 32 bits, the hash with which NameSet picks a bucket.
local function fnv1a(text)
  local hash = 2166136261
  for index = 1, #text do
    hash = ((hash ~ text:byte(index)) * 16777619) & 0xffffffff
  end
  return hash
end

--- Returns two names such that both, and the two joined by "\n", fall into the same bucket of a
--- NameSet with `bucket_count` buckets. In a set of just these two, the bucket contains
--- "\nfirst\nsecond\n", so only the line break check keeps "first\nsecond" from matching.
function helper.names_sharing_bucket(bucket_count)
  local mask = bucket_count - 1
  local by_bucket = {}
  for index = 1, 100000 do
    local name = ("user%d@example.test"):format(index)
    local bucket = fnv1a(name) & mask
    local others = by_bucket[bucket] or {}
    for _, other in ipairs(others) do
      if fnv1a(other .. "\n" .. name) & mask == bucket then
        return other, name
      end
    end
    others[#others + 1] = name
    by_bucket[bucket] = others
  end
  error("found no two names that share a bucket with their joined form")
end

-- Assertions ------------------------------------------------------------------------------

local function contains_text(_, arguments)
  local text, fragment = arguments[1], arguments[2]
  return type(text) == "string" and string.find(text, fragment, 1, true) ~= nil
end

say:set("assertion.contains_text.positive", "Expected the text:\n%s\nto contain:\n%s")
say:set("assertion.contains_text.negative", "Expected the text:\n%s\nnot to contain:\n%s")
luassert:register(
  "assertion",
  "contains_text",
  contains_text,
  "assertion.contains_text.positive",
  "assertion.contains_text.negative"
)

--- The secrets and their form-encoded spellings, which must never reach a log line or an error.
helper.SECRETS = {
  helper.TOKEN,
  helper.TOKEN_FORM,
  helper.CLIENT_SECRET,
  helper.SPECIAL_SECRET,
  helper.SPECIAL_SECRET_FORM,
  helper.LDAP_PASSWORD,
}

--- Fails if a recorded log line, or any of the extra texts, contains the token, a client secret
--- (as written or form-encoded) or the LDAP bind password.
function helper.assert_no_secrets(lines, ...)
  local secrets = helper.SECRETS
  for _, line in ipairs(lines) do
    for _, secret in ipairs(secrets) do
      luassert.is_not.contains_text(line.message, secret)
    end
  end
  for index = 1, select("#", ...) do
    local text = select(index, ...)
    for _, secret in ipairs(secrets) do
      luassert.is_not.contains_text(tostring(text), secret)
    end
  end
end

--- Asserts a verdict of passdb.verifyLogin: its result ("OK" or a refusal's result name) and, for a
--- refusal, that its reason contains `reason` when one is given.
function helper.assert_verdict(verdict, result, reason)
  if result == "OK" then
    luassert.is_true(verdict.ok, ("expected OK, got %s: %s"):format(tostring(verdict.result), tostring(verdict.reason)))
    return
  end
  luassert.is_false(verdict.ok, "expected " .. result .. ", got OK")
  luassert.equal(result, verdict.result, verdict.reason)
  if reason ~= nil then
    luassert.contains_text(verdict.reason, reason)
  end
end

--- Fails if any log line recorded by a helper.request or helper.logger since the last call
--- contains a secret. Spec files run it in a file-level after_each.
function helper.assert_logs_clean()
  local lists = recorded_lists
  recorded_lists = {}
  for _, lines in ipairs(lists) do
    helper.assert_no_secrets(lines)
  end
end

--- Calls `fn` and returns the message of the error it raises. Fails if it raises none.
function helper.error_message(fn, ...)
  local ok, problem = pcall(fn, ...)
  luassert.is_false(ok, "expected an error, but the call returned")
  if type(problem) == "table" and problem.message ~= nil then
    return problem.message
  end
  return tostring(problem)
end

package.loaded["spec.unit.helper"] = helper
return helper
