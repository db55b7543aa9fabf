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

describe("connection.connectionFactory deadline", function()
  local connection
  local listener
  local sockets

  local function open(options)
    local create = connection.connectionFactory(options)
    local sock = assert(create())
    sockets[#sockets + 1] = sock
    return sock
  end

  local function options(seconds_left)
    return { tls = false, host = "127.0.0.1", deadline = socket.gettime() + seconds_left, verifyCertificate = true }
  end

  before_each(function()
    connection = helper.load_bridge().connection
    sockets = {}
    -- A listener that never accepts, so the kernel completes the handshake and no data arrives.
    listener = assert(socket.bind("127.0.0.1", 0))
  end)

  after_each(function()
    for _, sock in ipairs(sockets) do
      sock:close()
    end
    listener:close()
  end)

  it("times out connect after the deadline", function()
    local sock = open(options(-1))
    local _, port = listener:getsockname()

    local connected, problem = sock:connect("127.0.0.1", port)

    assert.is_nil(connected)
    assert.equal("timeout", problem)
  end)

  it("connects before the deadline", function()
    local sock = open(options(2))
    local _, port = listener:getsockname()

    local connected = sock:connect("127.0.0.1", port)

    assert.equal(1, connected)
  end)

  it("ends a silent read at the deadline", function()
    local sock = open(options(0.05))
    local _, port = listener:getsockname()
    assert.equal(1, sock:connect("127.0.0.1", port))
    local started = socket.gettime()

    local line, problem = sock:receive("*l")

    assert.is_nil(line)
    assert.equal("timeout", problem)
    assert.is_true(socket.gettime() - started < 1)
  end)

  it("ignores luasocket's own timeout", function()
    local sock = open(options(0.05))
    local _, port = listener:getsockname()
    assert.equal(1, sock:connect("127.0.0.1", port))

    assert.equal(1, sock:settimeout(60))
    local started = socket.gettime()
    sock:receive("*l")

    assert.is_true(socket.gettime() - started < 1)
  end)

  it("reports a refused connection", function()
    local probe = assert(socket.bind("127.0.0.1", 0))
    local _, port = probe:getsockname()
    probe:close()
    local sock = open(options(2))

    local connected, problem = sock:connect("127.0.0.1", port)

    assert.is_nil(connected)
    assert.equal("connection refused", problem)
  end)
end)
