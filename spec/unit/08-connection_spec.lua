local socket = require("socket")
local helper = require("spec.unit.helper")

-- A stand-in for a luasec 1.2 X509 object whose extensions() returns `altNames` under the
-- subjectAltName OID, or no subjectAltName when `altNames` is nil.
local function certificate(altNames)
  return {
    extensions = function()
      if altNames == nil then
        return {}
      end
      local extension = { name = "X509v3 Subject Alternative Name" }
      for kind, values in pairs(altNames) do
        extension[kind] = values
      end
      return { ["2.5.29.17"] = extension }
    end,
  }
end

describe("connection.certificateNamesHost", function()
  local connection

  before_each(function()
    connection = helper.load_bridge().connection
  end)

  local cases = {
    { name = "exact name", names = { dNSName = { "idp.example.test" } }, host = "idp.example.test", expected = true },
    { name = "name in other case", names = { dNSName = { "IdP.Example.TEST" } }, host = "idp.example.test", expected = true },
    { name = "host in other case", names = { dNSName = { "idp.example.test" } }, host = "IDP.example.test", expected = true },
    { name = "second name", names = { dNSName = { "www.example.test", "idp.example.test" } }, host = "idp.example.test", expected = true },
    { name = "different name", names = { dNSName = { "www.example.test" } }, host = "idp.example.test", expected = false },
    { name = "parent domain", names = { dNSName = { "example.test" } }, host = "idp.example.test", expected = false },
    { name = "subdomain", names = { dNSName = { "idp.example.test" } }, host = "example.test", expected = false },
    { name = "name as suffix", names = { dNSName = { "p.example.test" } }, host = "idp.example.test", expected = false },
    { name = "leftmost wildcard", names = { dNSName = { "*.example.test" } }, host = "idp.example.test", expected = true },
    { name = "wildcard over two labels", names = { dNSName = { "*.example.test" } }, host = "a.idp.example.test", expected = false },
    { name = "wildcard for bare domain", names = { dNSName = { "*.example.test" } }, host = "example.test", expected = false },
    { name = "wildcard for empty label", names = { dNSName = { "*.example.test" } }, host = ".example.test", expected = false },
    { name = "wildcard of a TLD", names = { dNSName = { "*.com" } }, host = "example.com", expected = false },
    { name = "wildcard of test TLD", names = { dNSName = { "*.test" } }, host = "example.test", expected = false },
    { name = "bare wildcard", names = { dNSName = { "*" } }, host = "idp", expected = false },
    { name = "partial wildcard", names = { dNSName = { "i*.example.test" } }, host = "idp.example.test", expected = false },
    { name = "inner wildcard", names = { dNSName = { "idp.*.test" } }, host = "idp.example.test", expected = false },
    { name = "IPv4 address", names = { iPAddress = { "127.0.0.1" } }, host = "127.0.0.1", expected = true },
    { name = "other IPv4 address", names = { iPAddress = { "127.0.0.2" } }, host = "127.0.0.1", expected = false },
    { name = "IPv4 only as dNSName", names = { dNSName = { "127.0.0.1" } }, host = "127.0.0.1", expected = false },
    { name = "IPv4 against wildcard", names = { dNSName = { "*.0.0.1" } }, host = "127.0.0.1", expected = false },
    { name = "IPv6 address", names = { iPAddress = { "::1" } }, host = "::1", expected = true },
    { name = "IPv6 in other case", names = { iPAddress = { "FD00::A" } }, host = "fd00::a", expected = true },
    { name = "IPv6 only as dNSName", names = { dNSName = { "::1" } }, host = "::1", expected = false },
    { name = "name against iPAddress", names = { iPAddress = { "idp.example.test" } }, host = "idp.example.test", expected = false },
    { name = "empty subjectAltName", names = {}, host = "idp.example.test", expected = false },
  }
  for _, case in ipairs(cases) do
    it(("%s %s"):format(case.expected and "accepts" or "rejects", case.name), function()
      local result = connection.certificateNamesHost(certificate(case.names), case.host)

      assert.equal(case.expected, result)
    end)
  end

  it("rejects a certificate without subjectAltName", function()
    local result = connection.certificateNamesHost(certificate(nil), "idp.example.test")

    assert.is_false(result)
  end)
end)

describe("connection.openConnection deadline", function()
  local connection
  local listener
  local port
  local opened

  local function options()
    return { tls = false, host = "127.0.0.1", port = port, verifyCertificate = true }
  end

  -- Opens a connection to the listener that must be done `seconds_left` from now.
  local function open(seconds_left)
    local result = connection.openConnection(options(), socket.gettime() + seconds_left)
    if result.ok then
      opened[#opened + 1] = result.connection
    end
    return result
  end

  before_each(function()
    connection = helper.load_bridge().connection
    opened = {}
    -- A listener that never accepts, so the kernel completes the handshake and no data arrives.
    listener = assert(socket.bind("127.0.0.1", 0))
    port = select(2, listener:getsockname())
  end)

  after_each(function()
    for _, conn in ipairs(opened) do
      conn:close()
    end
    listener:close()
  end)

  it("times out connect after the deadline", function()
    local result = open(-1)

    assert.is_false(result.ok)
    assert.equal("timeout", result.error)
  end)

  it("connects before the deadline", function()
    local result = open(2)

    assert.is_true(result.ok)
  end)

  it("ends a silent read at the deadline", function()
    local conn = open(0.05).connection
    local started = socket.gettime()

    local line, problem = conn:receive("*l")

    assert.is_nil(line)
    assert.equal("timeout", problem)
    assert.is_true(socket.gettime() - started < 1)
  end)

  it("ignores luasocket's own timeout", function()
    local conn = open(0.05).connection
    assert.equal(1, conn.sock:settimeout(60))
    local started = socket.gettime()

    conn:receive("*l")

    assert.is_true(socket.gettime() - started < 1)
  end)

  it("uses the deadline set later", function()
    local conn = open(60).connection
    conn.deadline = socket.gettime() + 0.05
    local started = socket.gettime()

    local _, problem = conn:receive("*l")

    assert.equal("timeout", problem)
    assert.is_true(socket.gettime() - started < 1)
  end)

  it("fails a send after the deadline", function()
    local conn = open(2).connection
    conn.deadline = socket.gettime() - 1

    local sent, problem = conn:send("GET / HTTP/1.1\r\n\r\n")

    assert.is_nil(sent)
    assert.equal("timeout", problem)
  end)

  it("reports a refused connection", function()
    local probe = assert(socket.bind("127.0.0.1", 0))
    local _, free_port = probe:getsockname()
    probe:close()
    port = free_port

    local result = open(2)

    assert.is_false(result.ok)
    assert.equal("connection refused", result.error)
  end)
end)

describe("connection.Connection isReusable", function()
  local connection
  local listener
  local client
  local server_side

  before_each(function()
    connection = helper.load_bridge().connection
    listener = assert(socket.bind("127.0.0.1", 0))
    local _, port = listener:getsockname()
    local options = { tls = false, host = "127.0.0.1", port = port, verifyCertificate = true }
    client = assert(connection.openConnection(options, socket.gettime() + 2).connection)
    listener:settimeout(2)
    server_side = assert(listener:accept())
  end)

  after_each(function()
    client:close()
    server_side:close()
    listener:close()
  end)

  it("accepts a quiet open connection", function()
    assert.is_true(client:isReusable())
  end)

  it("rejects a connection the server closed", function()
    server_side:close()
    socket.sleep(0.05)

    assert.is_false(client:isReusable())
  end)

  it("rejects unread bytes from the server", function()
    assert(server_side:send("HTTP/1.1 200 OK\r\n"))
    socket.sleep(0.05)

    assert.is_false(client:isReusable())
  end)

  it("rejects bytes left in its buffer", function()
    assert(server_side:send("first\nsecond\n"))
    client.deadline = socket.gettime() + 2
    assert.equal("first", client:receive("*l"))

    assert.is_false(client:isReusable())
  end)
end)
