local cjson = require("cjson")
local helper = require("spec.unit.helper")

local function nested(depth)
  return string.rep('{"a":', depth - 1) .. '{"a":1}' .. string.rep("}", depth - 1)
end

describe("json.decodeObject", function()
  local json

  before_each(function()
    json = helper.load_bridge().json
  end)

  it("decodes an object", function()
    local decoded = json.decodeObject('{"email":"alice@example.test","exp":1767225900,"groups":["mail"]}')

    assert.is_true(decoded.ok)
    assert.equal("alice@example.test", decoded.object.email)
    assert.equal(1767225900, decoded.object.exp)
    assert.same({ "mail" }, decoded.object.groups)
  end)

  it("drops null members", function()
    local decoded = json.decodeObject('{"email":"alice@example.test","mail":null}')

    assert.is_true(decoded.ok)
    assert.is_nil(decoded.object.mail)
    assert.equal("alice@example.test", decoded.object.email)
  end)

  it("keeps numeric-looking keys as strings", function()
    local decoded = json.decodeObject('{"1":"one","email":"alice@example.test"}')

    assert.is_true(decoded.ok)
    assert.equal("one", decoded.object["1"])
    assert.is_nil(decoded.object[1])
  end)

  local rejected = {
    { name = "array", body = '[{"email":"alice@example.test"}]', problem = "body is not a JSON object" },
    { name = "empty array", body = "[]", problem = "body is not a JSON object" },
    { name = "empty object", body = "{}", problem = "body is not a JSON object" },
    { name = "string", body = '"alice@example.test"', problem = "body is not a JSON object" },
    { name = "number", body = "42", problem = "body is not a JSON object" },
    { name = "true", body = "true", problem = "body is not a JSON object" },
    { name = "null", body = "null", problem = "body is not a JSON object" },
    { name = "HTML", body = "<html><body>Sign in</body></html>", problem = "body is not valid JSON" },
    { name = "truncated object", body = '{"email":"alice@', problem = "body is not valid JSON" },
    { name = "trailing garbage", body = '{"email":"alice@example.test"} x', problem = "body is not valid JSON" },
    { name = "empty body", body = "", problem = "body is not valid JSON" },
    { name = "nesting of 33 levels", body = nested(33), problem = "body is not valid JSON" },
    { name = "nesting of 100000 levels", body = nested(100000), problem = "body is not valid JSON" },
    { name = "NaN number", body = '{"email":"alice@example.test","exp":NaN}', problem = "body is not valid JSON" },
    { name = "Infinity number", body = '{"email":"alice@example.test","exp":Infinity}', problem = "body is not valid JSON" },
    { name = "hexadecimal number", body = '{"email":"alice@example.test","exp":0x7fffffff}', problem = "body is not valid JSON" },
  }
  for _, case in ipairs(rejected) do
    it(("rejects %s"):format(case.name), function()
      local ok, decoded = pcall(json.decodeObject, case.body)

      assert.is_true(ok, "decodeObject raised an error")
      assert.is_false(decoded.ok)
      assert.equal(case.problem, decoded.problem)
    end)
  end

  it("accepts nesting of 32 levels", function()
    local decoded = json.decodeObject(nested(32))

    assert.is_true(decoded.ok)
  end)

  it("leaves the shared cjson depth limit alone", function()
    local decoded = cjson.decode(nested(40))

    assert.equal("table", type(decoded))
  end)
end)
