-- The HTTP/1.1 client against a real server: spec/unit/support/http-server.mjs runs in a node
-- process on 127.0.0.1, picks its reply by path and records each connection and request, so
-- these specs can count what reached it.

local cjson = require("cjson")
local socket = require("socket")
local helper = require("spec.unit.helper")

local http
local url
local server

local function start(idle_close_ms)
  server = helper.start_http_server(idle_close_ms)
end

local function options(overrides)
  local result = { timeoutMsecs = 3000, maxResponseBytes = 65536, allowInvalidCertificate = false, maxIdleMsecs = 30000 }
  for key, value in pairs(overrides or {}) do
    result[key] = value
  end
  return result
end

-- Sends one request to the spec server. `fields` may set method, headers, body and options.
local function request(target, fields)
  fields = fields or {}
  local parsed = assert(url.parseUrl(("http://127.0.0.1:%d%s"):format(server.port, target)))
  return http.httpRequest({
    method = fields.method or "GET",
    url = parsed,
    headers = fields.headers or {},
    body = fields.body,
    options = options(fields.options),
  })
end

-- Returns the decoded echo that /json and similar paths send: connection, request, method,
-- target, head and body.
local function echo(response)
  assert.is_true(response.ok, response.error)
  return cjson.decode(response.body)
end

local function count_events(kind)
  local total = 0
  for _, event in ipairs(server.events()) do
    if event.event == kind then
      total = total + 1
    end
  end
  return total
end

-- Waits up to a second for the server to record `count` events of `kind`, because it records a
-- close only after the client has closed its end.
local function wait_for_events(kind, count)
  for _ = 1, 100 do
    if count_events(kind) >= count then
      return
    end
    socket.sleep(0.01)
  end
end

before_each(function()
  local bundle = helper.load_bridge()
  http = bundle.http
  url = bundle.url
end)

after_each(function()
  http.closeIdleConnections()
  if server ~= nil then
    server.stop()
    server = nil
  end
  helper.remove_temp_files()
end)

describe("httpRequest bodies", function()
  before_each(function()
    start()
  end)

  it("reads a Content-Length body", function()
    local response = request("/json")

    assert.is_true(response.ok, response.error)
    assert.equal(200, response.status)
    assert.equal("/json", echo(response).target)
    assert.equal("application/json", response.headers["content-type"])
  end)

  it("reads a chunked body", function()
    local response = request("/chunked")

    assert.equal(200, response.status)
    assert.equal("/chunked", echo(response).target)
  end)

  it("keeps a chunked connection", function()
    request("/chunked")

    local second = request("/chunked")

    assert.equal(1, echo(second).connection)
    assert.equal(2, echo(second).request)
  end)

  it("reads a body until close", function()
    local response = request("/until-close")

    assert.equal(200, response.status)
    assert.equal("/until-close", echo(response).target)
  end)

  it("reads an empty 204 reply", function()
    local response = request("/no-content")

    assert.is_true(response.ok, response.error)
    assert.equal(204, response.status)
    assert.equal("", response.body)
  end)

  it("returns a 404 reply", function()
    local response = request("/missing")

    assert.is_true(response.ok, response.error)
    assert.equal(404, response.status)
  end)

  local limits = {
    { path = "/big-length", name = "Content-Length" },
    { path = "/big-chunked", name = "chunked" },
    { path = "/big-until-close", name = "until-close" },
  }
  for _, case in ipairs(limits) do
    it("rejects an oversize " .. case.name .. " body", function()
      local response = request(case.path .. "?bytes=2000", { options = { maxResponseBytes = 1024 } })

      assert.is_false(response.ok)
      assert.equal("response body larger than 1024 bytes", response.error)
    end)

    it("accepts a " .. case.name .. " body at the limit", function()
      local response = request(case.path .. "?bytes=1024", { options = { maxResponseBytes = 1024 } })

      assert.is_true(response.ok, response.error)
      assert.equal(1024, #response.body)
    end)
  end
end)

describe("httpRequest reply checks", function()
  before_each(function()
    start()
  end)

  it("accepts 100 header lines", function()
    local response = request("/headers?count=100")

    assert.is_true(response.ok, response.error)
    assert.equal("99", response.headers["x-header-99"])
  end)

  it("rejects 101 header lines", function()
    local response = request("/headers?count=101")

    assert.is_false(response.ok)
    assert.equal("too many response headers", response.error)
  end)

  it("rejects an invalid status line", function()
    local response = request("/bad-status")

    assert.is_false(response.ok)
    assert.equal("the reply is not HTTP/1.x", response.error)
  end)

  it("reports a refused connection", function()
    local probe = assert(socket.bind("127.0.0.1", 0))
    local _, port = probe:getsockname()
    probe:close()
    local parsed = assert(url.parseUrl(("http://127.0.0.1:%d/json"):format(port)))

    local response = http.httpRequest({ method = "GET", url = parsed, headers = {}, options = options() })

    assert.is_false(response.ok)
    assert.equal("connection refused", response.error)
  end)
end)

describe("httpRequest request", function()
  before_each(function()
    start()
  end)

  it("sends the request line", function()
    local head = echo(request("/json?a=1&b=2")).head

    assert.equal("GET /json?a=1&b=2 HTTP/1.1", head:match("^[^\r]*"))
  end)

  it("sends Host with the port", function()
    local head = echo(request("/json")).head

    assert.contains_text(head, ("\r\nhost: 127.0.0.1:%d\r\n"):format(server.port))
  end)

  it("sends its user agent", function()
    local head = echo(request("/json")).head

    assert.contains_text(head, "\r\nuser-agent: dovecot-oauth2-bridge")
  end)

  it("sends the given headers", function()
    local head = echo(request("/json", { headers = { authorization = "Bearer abc", accept = "application/json" } })).head

    assert.contains_text(head, "\r\nauthorization: Bearer abc")
    assert.contains_text(head, "\r\naccept: application/json")
  end)

  it("sends no Content-Length for GET", function()
    local head = echo(request("/json")).head

    assert.is_nil(head:lower():find("content%-length"))
  end)

  it("sends a POST body", function()
    local body = "token=abc&token_type_hint=access_token"

    local received = echo(request("/json", {
      method = "POST",
      headers = { ["content-type"] = "application/x-www-form-urlencoded" },
      body = body,
    }))

    assert.equal("POST", received.method)
    assert.equal(body, received.body)
    assert.contains_text(received.head, "\r\ncontent-length: " .. #body)
    assert.contains_text(received.head, "\r\ncontent-type: application/x-www-form-urlencoded")
  end)

  it("sends an empty POST body", function()
    local received = echo(request("/json", { method = "POST", body = "" }))

    assert.equal("", received.body)
    assert.contains_text(received.head, "\r\ncontent-length: 0")
  end)
end)

describe("httpRequest keep-alive", function()
  it("reuses the kept connection", function()
    start()

    local first = echo(request("/json"))
    local second = echo(request("/json"))

    assert.equal(1, first.connection)
    assert.equal(1, second.connection)
    assert.equal(2, second.request)
    assert.equal(1, count_events("connection"))
  end)

  it("reuses it after a POST", function()
    start()

    echo(request("/json", { method = "POST", body = "a=1" }))
    local second = echo(request("/json", { method = "POST", body = "a=2" }))

    assert.equal(1, second.connection)
    assert.equal("a=2", second.body)
  end)

  it("opens a new connection at max idle 0", function()
    start()

    echo(request("/json", { options = { maxIdleMsecs = 0 } }))
    local second = echo(request("/json", { options = { maxIdleMsecs = 0 } }))

    assert.equal(2, second.connection)
    wait_for_events("close", 2)
    assert.equal(2, count_events("close"))
  end)

  it("drops a connection idle too long", function()
    start()

    echo(request("/json", { options = { maxIdleMsecs = 100 } }))
    socket.sleep(0.2)
    local second = echo(request("/json", { options = { maxIdleMsecs = 100 } }))

    assert.equal(2, second.connection)
    wait_for_events("close", 1)
    assert.equal(1, count_events("close"))
  end)

  it("honours Connection: close", function()
    start()

    echo(request("/close-header"))
    local second = echo(request("/close-header"))

    -- The server leaves both connections open, so only the client can have closed them.
    assert.equal(2, second.connection)
    wait_for_events("close", 2)
    assert.equal(2, count_events("close"))
  end)

  it("closes after an HTTP/1.0 reply", function()
    start()

    echo(request("/http10"))
    local second = echo(request("/http10"))

    assert.equal(2, second.connection)
  end)

  it("keeps an HTTP/1.0 keep-alive reply", function()
    start()

    echo(request("/http10-keep-alive"))
    local second = echo(request("/http10-keep-alive"))

    assert.equal(1, second.connection)
  end)

  it("closes after a body until close", function()
    start()

    echo(request("/until-close"))
    local second = echo(request("/until-close"))

    assert.equal(2, second.connection)
  end)

  it("keeps one connection per origin", function()
    start()
    local first_server = server
    local other = helper.start_http_server()

    local ok, problem = pcall(function()
      echo(request("/json"))
      server = other
      echo(request("/json"))
      server = first_server

      local again = echo(request("/json"))

      assert.equal(1, again.connection)
      assert.equal(2, again.request)
    end)
    server = first_server
    http.closeIdleConnections()
    other.stop()
    assert(ok, problem)
  end)
end)

describe("httpRequest closed kept connections", function()
  it("notices an idle close before a GET", function()
    start(50)
    echo(request("/json"))
    wait_for_events("idle-close", 1)
    socket.sleep(0.02)

    local second = echo(request("/json"))

    assert.equal(2, second.connection)
    assert.equal(0, count_events("drop"))
  end)

  it("notices an idle close before a POST", function()
    start(50)
    echo(request("/json"))
    wait_for_events("idle-close", 1)
    socket.sleep(0.02)

    local response = request("/json", { method = "POST", body = "a=1" })

    assert.is_true(response.ok, response.error)
    assert.equal(2, echo(response).connection)
  end)

  it("retries a GET dropped on a kept connection", function()
    start()
    echo(request("/drop-kept"))

    local response = request("/drop-kept")

    assert.is_true(response.ok, response.error)
    assert.equal(2, echo(response).connection)
    assert.equal(1, count_events("drop"))
    assert.equal(3, count_events("request"))
  end)

  it("retries a GET only once", function()
    start()
    echo(request("/drop-after-first"))

    local response = request("/drop-after-first")

    assert.is_false(response.ok)
    assert.equal("closed", response.error)
    assert.equal(2, count_events("connection"))
    assert.equal(3, count_events("request"))
  end)

  it("does not retry a POST", function()
    start()
    echo(request("/drop-kept"))

    local response = request("/drop-kept", { method = "POST", body = "a=1" })

    assert.is_false(response.ok)
    assert.equal("closed", response.error)
    assert.equal(1, count_events("connection"))
    assert.equal(2, count_events("request"))
  end)

  it("does not retry on a new connection", function()
    start()

    local response = request("/drop")

    assert.is_false(response.ok)
    assert.equal("closed", response.error)
    assert.equal(1, count_events("connection"))
    assert.equal(1, count_events("request"))
  end)

  it("does not retry after a partial reply", function()
    start()
    echo(request("/partial-kept"))

    local response = request("/partial-kept")

    assert.is_false(response.ok)
    assert.equal(1, count_events("connection"))
  end)

  it("retries a GET reset on a kept connection", function()
    start()
    echo(request("/reset-kept"))

    local response = request("/reset-kept")

    assert.is_true(response.ok, response.error)
    assert.equal(2, echo(response).connection)
  end)
end)

describe("httpRequest deadline", function()
  it("times out a server sending a byte per second", function()
    start()
    local started = socket.gettime()

    local response = request("/slow", { options = { timeoutMsecs = 1500 } })
    local elapsed = socket.gettime() - started

    assert.is_false(response.ok)
    assert.equal("timeout", response.error)
    assert.is_true(elapsed >= 1.4, ("returned after %.2f s"):format(elapsed))
    -- The reply would take over 100 s at this rate, so anything near 1.5 s is the deadline.
    assert.is_true(elapsed < 2.5, ("returned after %.2f s"):format(elapsed))
  end)

  it("covers connect and the retry", function()
    start()
    echo(request("/drop-kept"))
    local started = socket.gettime()

    -- The deadline has passed before the request starts, so neither the kept connection nor a
    -- new one may be used.
    local response = request("/drop-kept", { options = { timeoutMsecs = 0.001 } })

    assert.is_false(response.ok)
    assert.equal("timeout", response.error)
    assert.is_true(socket.gettime() - started < 0.5)
  end)
end)
