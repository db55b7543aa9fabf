-- Property-based check of passdb.verifyLogin: thousands of random logins, each with random
-- settings, a random token, login name and account list, and a random identity provider response
-- written as JSON text (random nesting, types, nulls, duplicate keys, escapes). The invariant:
-- the result is OK exactly when the identity provider accepted the token, its identity claim
-- names the login name, the token policy is met and the account exists. No Lua error escapes.
--
-- PROPERTY_SEED=<integer> repeats a run, and PROPERTY_CASES=<n> changes the number of cases.
-- A failure names the seed and the case.

local helper = require("spec.unit.helper")

after_each(helper.assert_logs_clean)

local NOW = helper.NOW
local CASES = tonumber(os.getenv("PROPERTY_CASES")) or 3000
-- The nesting depth that json.ts allows (cjson.decode_max_depth), the top-level object included.
local MAX_DEPTH = 32
local ISSUER = "https://idp.example.test"
local AUDIENCE = "roundcube"

-- Random numbers ---------------------------------------------------------------------------

--- SplitMix64 over Lua 5.4 integers, so a seed repeats a run on any platform. math.random is
--- shared with the other specs and could not be reseeded safely.
local function new_random(seed)
  local state = seed
  local random = {}

  function random.next()
    state = state + 0x9E3779B97F4A7C15
    local z = state
    z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
    z = (z ~ (z >> 27)) * 0x94D049BB133111EB
    return z ~ (z >> 31)
  end

  --- Returns an integer from `low` to `high`, both included.
  function random.int(low, high)
    return low + (random.next() >> 1) % (high - low + 1)
  end

  function random.chance(probability)
    return random.int(1, 1000000) <= probability * 1000000
  end

  function random.pick(list)
    return list[random.int(1, #list)]
  end

  return random
end

-- The JSON model ---------------------------------------------------------------------------

-- A generated document is JSON text plus a model of what the bridge should decode from it:
-- Lua strings, numbers and booleans, NULL for JSON null, and tables marked as arrays or objects.
-- For a duplicate key the model keeps the last value, as lua-cjson does.
local NULL = setmetatable({}, { __name = "json null" })
local ARRAY = { __name = "json array" }
local OBJECT = { __name = "json object" }

local function is_array(value)
  return type(value) == "table" and getmetatable(value) == ARRAY
end

local function is_object(value)
  return type(value) == "table" and getmetatable(value) == OBJECT
end

-- Valid UTF-8 only: a body that is not UTF-8 is the subject of an integration test.
local NON_ASCII = { "é", "Ü", "ß", "ø", "日本", "😀", "\u{2028}" }

--- Encodes a string as a JSON string, with some ASCII characters written as \uXXXX escapes.
local function encode_string(random, text)
  local out = { '"' }
  for index = 1, #text do
    local character = text:sub(index, index)
    local byte = character:byte()
    if character == '"' then
      out[#out + 1] = '\\"'
    elseif character == "\\" then
      out[#out + 1] = "\\\\"
    elseif byte < 0x20 then
      out[#out + 1] = ("\\u%04x"):format(byte)
    elseif byte < 0x80 and random.chance(0.05) then
      out[#out + 1] = ("\\u%04X"):format(byte)
    else
      out[#out + 1] = character
    end
  end
  out[#out + 1] = '"'
  return table.concat(out)
end

local function random_text(random)
  local pieces = {}
  for _ = 1, random.int(0, 8) do
    local kind = random.int(1, 10)
    if kind <= 6 then
      pieces[#pieces + 1] = string.char(random.int(0x61, 0x7a))
    elseif kind == 7 then
      pieces[#pieces + 1] = random.pick(NON_ASCII)
    elseif kind == 8 then
      pieces[#pieces + 1] = random.pick({ " ", "@", ".", '"', "\\", "\n", "\t", "\0" })
    else
      pieces[#pieces + 1] = tostring(random.int(0, 9))
    end
  end
  return table.concat(pieces)
end

local generate_value

--- Returns JSON text, model and nesting depth of a random array or object with up to 4 members.
local function generate_container(random, depth_left, kind)
  local parts, depth = {}, 0
  local model = setmetatable({}, kind == "array" and ARRAY or OBJECT)
  for index = 1, random.int(0, 4) do
    local text, value, value_depth = generate_value(random, depth_left - 1)
    depth = math.max(depth, value_depth)
    if kind == "array" then
      parts[#parts + 1] = text
      model[index] = value
    else
      local key = random.pick({ "a", "email", "b", "value", random_text(random) })
      parts[#parts + 1] = encode_string(random, key) .. ":" .. text
      model[key] = value
    end
  end
  local open, close = "[", "]"
  if kind == "object" then
    open, close = "{", "}"
  end
  return open .. table.concat(parts, ",") .. close, model, depth + 1
end

--- Returns JSON text, model and nesting depth (0 for a scalar) of a random value.
function generate_value(random, depth_left)
  local kind = random.int(1, 11)
  if kind == 1 then
    return "null", NULL, 0
  elseif kind == 2 then
    local flag = random.chance(0.5)
    return tostring(flag), flag, 0
  elseif kind == 3 then
    local number = random.int(-100000, 100000)
    return tostring(number), number, 0
  elseif kind == 4 then
    local text = ("%d.%de%d"):format(random.int(0, 99), random.int(0, 99), random.int(-5, 5))
    return text, tonumber(text), 0
  elseif kind == 5 then
    -- Beyond the range of a double: lua-cjson reads these as plus or minus infinity.
    local text = random.pick({ "1e400", "-1e400", "123456789012345678901234567890" })
    return text, tonumber(text), 0
  elseif kind <= 8 or depth_left <= 0 then
    local text = random_text(random)
    return encode_string(random, text), text, 0
  elseif kind == 9 then
    return generate_container(random, depth_left, "array")
  else
    return generate_container(random, depth_left, "object")
  end
end

--- Wraps `text` in `levels` single-member objects.
local function wrap(text, model, depth, levels)
  for _ = 1, levels do
    text = '{"n":' .. text .. "}"
    model = setmetatable({ n = model }, OBJECT)
    depth = depth + 1
  end
  return text, model, depth
end

-- Claims -----------------------------------------------------------------------------------

local function ascii_upper(text)
  return (text:gsub("[a-z]", string.upper))
end

--- Returns JSON text and model for a claim that names the login `user` some of the time.
local function identity_value(random, user)
  local choice = random.int(1, 18)
  local text
  if choice <= 11 then
    text = user
  elseif choice == 12 then
    text = ascii_upper(user)
  elseif choice == 13 then
    text = " " .. user
  elseif choice == 14 then
    text = user .. "\0"
  elseif choice == 15 then
    text = "bob@example.test"
  elseif choice == 16 then
    text = ""
  else
    return generate_value(random, 2)
  end
  return encode_string(random, text), text, 0
end

local function policy_value(random, good_texts)
  if random.chance(0.85) then
    local text = random.pick(good_texts)
    if type(text) == "table" then
      local items = {}
      for index, item in ipairs(text) do
        items[index] = encode_string(random, item)
      end
      return "[" .. table.concat(items, ",") .. "]", setmetatable({ table.unpack(text) }, ARRAY), 1
    end
    return encode_string(random, text), text, 0
  end
  return generate_value(random, 2)
end

local function exp_value(random)
  local choice = random.int(1, 10)
  if choice <= 6 then
    local exp = NOW + random.int(-100, 100000)
    return tostring(exp), exp, 0
  elseif choice == 7 then
    local exp = NOW + random.int(-60, 60)
    return tostring(exp), exp, 0
  elseif choice == 8 then
    local text = tostring(NOW + random.int(-100, 1000)) .. random.pick({ "", ".5", "." })
    return encode_string(random, text), text, 0
  end
  return generate_value(random, 1)
end

local CLAIM_MAKERS = {
  email = function(random, user) return identity_value(random, user) end,
  mail = function(random, user) return identity_value(random, user) end,
  ["ext.email"] = function(random, user) return identity_value(random, user) end,
  ext = function(random, user)
    local text, model, depth = identity_value(random, user)
    return '{"email":' .. text .. "}", setmetatable({ email = model }, OBJECT), depth + 1
  end,
  active = function(random)
    if random.chance(0.85) then
      return "true", true, 0
    end
    return generate_value(random, 1)
  end,
  exp = exp_value,
  scope = function(random) return policy_value(random, { "openid email", "email", "mail", { "openid", "email" }, { "mail" } }) end,
  scp = function(random) return policy_value(random, { "email", { "email" } }) end,
  aud = function(random) return policy_value(random, { AUDIENCE, { AUDIENCE, "other" }, "other" }) end,
  azp = function(random) return policy_value(random, { AUDIENCE, "other" }) end,
  client_id = function(random) return policy_value(random, { AUDIENCE }) end,
  iss = function(random) return policy_value(random, { ISSUER, "https://evil.example.test" }) end,
  email_verified = function(random)
    if random.chance(0.85) then
      return "true", true, 0
    end
    return generate_value(random, 1)
  end,
  status = function(random) return policy_value(random, { "enabled", "disabled" }) end,
  sub = function(random) return generate_value(random, 1) end,
  name = function(random) return generate_value(random, 3) end,
}
local IDENTITY_CLAIMS = { email = true, mail = true, ext = true }
local CLAIM_NAMES = {}
for name in pairs(CLAIM_MAKERS) do
  CLAIM_NAMES[#CLAIM_NAMES + 1] = name
end
table.sort(CLAIM_NAMES)

--- Returns { text, kind, model, depth } for a random response body for `user`. The claims that
--- `settings` read are present more often.
local function generate_body(random, user, settings)
  local shape = random.int(1, 60)
  if shape == 1 then
    return { text = "", kind = "invalid" }
  elseif shape == 2 then
    return { text = "<html><body>Sign in</body></html>", kind = "invalid" }
  elseif shape == 3 then
    local text, model = generate_value(random, 3)
    return { text = "[" .. text .. "]", kind = "array", model = model }
  elseif shape == 4 then
    local text = generate_value(random, 0)
    return { text = text, kind = "scalar" }
  elseif shape == 5 then
    return { text = "{}", kind = "empty" }
  elseif shape == 6 then
    return { text = '{"email":"' .. user .. '",}', kind = "invalid" }
  end

  local members = {}
  for _, name in ipairs(CLAIM_NAMES) do
    local present = 0.6
    if IDENTITY_CLAIMS[name] or name == settings.username_attribute or name == settings.active_attribute then
      present = 0.9
    elseif name == "active" and settings.introspection_mode == "post" then
      present = 0.9
    end
    if random.chance(present) then
      -- Some claims come twice.
      for _ = 1, random.chance(0.1) and 2 or 1 do
        local text, value, depth = CLAIM_MAKERS[name](random, user)
        if random.chance(0.03) then
          text, value, depth = wrap(text, value, depth, random.int(25, 35))
        end
        members[#members + 1] = { text = encode_string(random, name) .. ":" .. text, name = name, value = value, depth = depth }
      end
    end
  end
  if #members == 0 then
    return { text = "{}", kind = "empty" }
  end

  -- Shuffled, so that duplicates and nulls come in any order. The model keeps the value that
  -- comes last in the text.
  for index = #members, 2, -1 do
    local other = random.int(1, index)
    members[index], members[other] = members[other], members[index]
  end
  local texts, model, depth = {}, setmetatable({}, OBJECT), 0
  for index, member in ipairs(members) do
    texts[index] = member.text
    model[member.name] = member.value
    depth = math.max(depth, member.depth)
  end
  return { text = "{" .. table.concat(texts, ",") .. "}", kind = "object", model = model, depth = depth + 1 }
end

-- Settings, names, tokens and accounts ------------------------------------------------------

local USERS = {
  "alice@example.test", "Alice@Example.TEST", "bob@example.test", "carol@example.test",
  "ålice@bücher.example", "ÅLICE@bücher.example", "a%b@example.test", "a.b@example.test",
  "user", ("x"):rep(300) .. "@example.test",
}
local B64TOKEN_CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/"

local function random_token(random)
  local characters = {}
  for index = 1, random.int(1, 60) do
    local position = random.int(1, #B64TOKEN_CHARACTERS)
    characters[index] = B64TOKEN_CHARACTERS:sub(position, position)
  end
  local token = table.concat(characters) .. ("="):rep(random.int(0, 2))
  if random.chance(0.06) then
    -- A byte that no bearer token has, somewhere in the token.
    local position = random.int(1, #token)
    token = token:sub(1, position - 1) .. random.pick({ " ", "\t", "\0", "\x7f", "é", '"', "=", ",", "\n" }) .. token:sub(position)
  elseif random.chance(0.01) then
    token = ""
  end
  return token
end

local function random_settings_text(random, index, account_file)
  local mode = random.pick({ "auth", "auth", "get", "post" })
  local lines = {
    "introspection_url = https://idp.example.test/endpoint",
    "introspection_mode = " .. mode,
    "account_file = " .. account_file,
    "client_id = " .. AUDIENCE,
    "client_secret = " .. helper.CLIENT_SECRET,
    "username_attribute = " .. random.pick({ "email", "email", "mail", "ext.email" }),
    "username_format = " .. random.pick({ "%Lu", "%u", "%Ln@example.test" }),
    "clock_skew_secs = " .. random.pick({ "0", "30" }),
  }
  if random.chance(0.4) then
    lines[#lines + 1] = "scope = " .. random.pick({ "email", "mail email" })
    lines[#lines + 1] = "scope_match = " .. random.pick({ "any", "all" })
  end
  if random.chance(0.3) then
    lines[#lines + 1] = "audience = " .. AUDIENCE
  end
  if random.chance(0.3) then
    lines[#lines + 1] = "issuers = " .. ISSUER
  end
  if random.chance(0.3) then
    lines[#lines + 1] = "require_email_verified = yes"
  end
  if random.chance(0.2) then
    lines[#lines + 1] = "active_attribute = status"
    lines[#lines + 1] = "active_value = enabled"
  end
  return table.concat(lines, "\n") .. "\n", ("settings #%d"):format(index)
end

-- The oracle ---------------------------------------------------------------------------------

local function lower(text)
  return (text:gsub("[A-Z]", string.lower))
end

local function present(value)
  return value ~= nil and value ~= NULL
end

--- Returns the value of a present claim, or nil for an absent or null one.
local function value_of(value)
  if value == NULL then
    return nil
  end
  return value
end

--- Reads a claim as the README documents: an exact name first, else a dotted path into objects.
local function lookup_claim(model, name)
  if present(model[name]) or not name:find(".", 1, true) then
    return value_of(model[name])
  end
  local current = model
  for part in name:gmatch("[^.]+") do
    if not (is_object(current) or is_array(current)) then
      return nil
    end
    current = current[part]
  end
  return value_of(current)
end

local function format_identity(format, value)
  local local_part = value:match("^(.*)@[^@]*$") or value
  if format == "%Lu" then
    return lower(value)
  elseif format == "%u" then
    return value
  end
  return lower(local_part) .. "@example.test"
end

--- Returns a string claim, or a JSON array of strings, as a list of words, and false for any other type.
local function string_list(value)
  if type(value) == "string" then
    local words = {}
    for word in value:gmatch("%S+") do
      words[#words + 1] = word
    end
    return words
  end
  if is_array(value) or (is_object(value) and next(value) == nil) then
    local words = {}
    for index, item in ipairs(value) do
      if type(item) ~= "string" then
        return false
      end
      words[index] = item
    end
    return words
  end
  return false
end

local function contains(list, wanted)
  for _, item in ipairs(list) do
    if item == wanted then
      return true
    end
  end
  return false
end

local function claim_text(value)
  if type(value) == "number" then
    return math.tointeger(value) and tostring(math.tointeger(value)) or tostring(value)
  elseif type(value) == "string" or type(value) == "boolean" then
    return tostring(value)
  end
  return nil
end

--- Returns true when the documented token policy accepts the claims, else the failed check.
local function policy_holds(settings, claims)
  if settings.active_attribute ~= nil and claim_text(value_of(claims[settings.active_attribute])) ~= settings.active_value then
    return false, "active_value"
  end

  local exp = claims.exp
  if present(exp) then
    local seconds = type(exp) == "number" and exp or (type(exp) == "string" and exp:match("^%d+%.?%d*$") and tonumber(exp))
    -- An infinite exp (1e400) is no number of seconds, so it cannot be trusted.
    if not seconds or seconds == math.huge or seconds + settings.clock_skew_secs <= NOW then
      return false, "exp"
    end
  end

  if #settings.issuers > 0 and not (type(claims.iss) == "string" and contains(settings.issuers, claims.iss)) then
    return false, "iss"
  end

  if #settings.audience > 0 then
    local candidates = {}
    if present(claims.aud) then
      candidates = string_list(claims.aud)
      if candidates == false then
        return false, "aud"
      end
    end
    for _, name in ipairs({ "azp", "client_id" }) do
      if type(claims[name]) == "string" then
        candidates[#candidates + 1] = claims[name]
      end
    end
    local accepted = false
    for _, candidate in ipairs(candidates) do
      accepted = accepted or contains(settings.audience, candidate)
    end
    if not accepted then
      return false, "aud"
    end
  end

  if #settings.scope > 0 then
    local scope = value_of(claims.scope)
    if scope == nil then
      scope = value_of(claims.scp)
    end
    local granted = string_list(scope)
    if not granted then
      return false, "scope"
    end
    local matched = 0
    for _, required in ipairs(settings.scope) do
      if contains(granted, required) then
        matched = matched + 1
      end
    end
    if matched == 0 or (settings.scope_match == "all" and matched < #settings.scope) then
      return false, "scope"
    end
  end

  if settings.require_email_verified and claims.email_verified ~= true then
    return false, "email_verified"
  end
  return true
end

--- Returns true when a login must succeed, else false and the first condition that fails.
local function login_valid(case)
  if not case.token:match("^[%w%-%._~%+/]+=*$") then
    return false, "token syntax"
  end
  if not case.response.ok or case.response.status ~= 200 then
    return false, "HTTP"
  end
  local body = case.body
  if body.kind ~= "object" or body.depth > MAX_DEPTH then
    return false, "body"
  end

  local claims = body.model
  local active = claims.active
  if active == NULL or (active ~= nil and active ~= true) then
    return false, "active"
  end
  if case.settings.introspection_mode == "post" and active ~= true then
    return false, "active required"
  end

  local identity = lookup_claim(claims, case.settings.username_attribute)
  if type(identity) ~= "string" or identity == "" then
    return false, "identity claim"
  end
  if lower(format_identity(case.settings.username_format, identity)) ~= lower(case.user) then
    return false, "identity"
  end

  local policy, failed = policy_holds(case.settings, claims)
  if not policy then
    return false, failed
  end
  if case.account_status ~= "found" then
    return false, "account"
  end
  return true
end

-- The property ---------------------------------------------------------------------------------

local RESULTS = { PASSWORD_MISMATCH = true, USER_UNKNOWN = true, USER_DISABLED = true, INTERNAL_FAILURE = true }
local OTHER_STATUSES = { 401, 403, 400, 500, 302, 204 }

describe("passdb.verifyLogin property", function()
  local bridge
  local settings_pool

  local seed = tonumber(os.getenv("PROPERTY_SEED")) or os.time()

  before_each(function()
    bridge = helper.load_bridge()
    local random = new_random(seed ~ 0x5e771)
    local account_file = helper.accounts_file({})
    settings_pool = {}
    for index = 1, 48 do
      settings_pool[index] = bridge.config.parseSettings(random_settings_text(random, index, account_file))
    end
  end)

  after_each(function()
    helper.remove_temp_files()
  end)

  --- Builds one random case: settings, user, token, accounts, response and body.
  local function make_case(random)
    local case = {
      settings = random.pick(settings_pool),
      user = random.pick(USERS),
      token = random_token(random),
      account_status = "missing",
    }

    local accounts = {}
    for _ = 1, random.int(0, 3) do
      accounts[#accounts + 1] = random.pick(USERS)
    end
    if random.chance(0.7) then
      accounts[#accounts + 1] = random.chance(0.5) and case.user or ascii_upper(case.user)
    end
    for _, account in ipairs(accounts) do
      if lower(account) == lower(case.user) then
        case.account_status = "found"
      end
    end
    if random.chance(0.05) then
      case.account_status = random.pick({ "unavailable", "disabled" })
    end
    case.accounts = helper.account_source(function()
      return { status = case.account_status, reason = "spec account source is down" }
    end)

    case.body = generate_body(random, random.chance(0.8) and case.user or random.pick(USERS), case.settings)
    if random.chance(0.03) then
      case.response = { ok = false, error = random.pick({ "timeout", "connection refused", "closed" }) }
    else
      local status = random.chance(0.85) and 200 or random.pick(OTHER_STATUSES)
      case.response = { ok = true, status = status, body = case.body.text }
    end
    return case
  end

  local function describe_case(index, case, verdict)
    return ("seed %d, case %d: user %q, token %q, settings %s, status %s, body %s -> %s"):format(
      seed, index, case.user, case.token, case.settings.username_attribute .. " " .. case.settings.username_format
        .. " " .. case.settings.introspection_mode, tostring(case.response.status), case.body.text,
      verdict.ok and "OK" or tostring(verdict.result) .. ": " .. tostring(verdict.reason))
  end

  it("holds for random logins", function()
    local random = new_random(seed)
    local accepted = 0

    for index = 1, CASES do
      local case = make_case(random)
      local transport = helper.transport(case.response)
      local context = helper.context(bridge, case.settings, nil, transport, { accounts = case.accounts })
      local logger = helper.logger()

      local completed, verdict = pcall(bridge.passdb.verifyLogin, context, case.user, case.token, logger)

      assert(completed, ("seed %d, case %d: Lua error: %s"):format(seed, index, tostring(verdict)))
      assert(type(verdict) == "table" and type(verdict.ok) == "boolean", ("seed %d, case %d: no verdict"):format(seed, index))
      local valid, failed = login_valid(case)
      local function check(condition, problem)
        if not condition then
          assert(false, describe_case(index, case, verdict) .. "; " .. problem)
        end
      end
      if verdict.ok then
        accepted = accepted + 1
        check(valid, "accepted although " .. tostring(failed) .. " fails")
        check(#transport.calls == 1, "accepted without asking the identity provider")
      else
        check(RESULTS[verdict.result], "unknown result")
        check(type(verdict.reason) == "string" and verdict.reason ~= "", "no reason")
        check(not valid, "a valid login was refused")
      end
      if #case.token >= 8 then
        helper.assert_no_secrets(logger.lines, verdict.reason)
        for _, line in ipairs(logger.lines) do
          assert(not line.message:find(case.token, 1, true), ("seed %d, case %d: token in log"):format(seed, index))
        end
        assert(verdict.ok or not verdict.reason:find(case.token, 1, true), ("seed %d, case %d: token in reason"):format(seed, index))
      end
    end

    -- The generator must produce enough valid logins for the property to mean something.
    assert(accepted >= CASES // 25, ("seed %d: only %d of %d cases accepted"):format(seed, accepted, CASES))
  end)

  it("sends the token unchanged", function()
    local random = new_random(seed + 1)

    for index = 1, CASES // 10 do
      local case = make_case(random)
      if case.token:match("^[%w%-%._~%+/]+=*$") then
        local transport = helper.transport(case.response)
        local context = helper.context(bridge, case.settings, nil, transport, { accounts = case.accounts })

        bridge.passdb.verifyLogin(context, case.user, case.token, helper.logger())

        local request = transport.calls[1]
        local where = ("seed %d, case %d (mode %s)"):format(seed + 1, index, case.settings.introspection_mode)
        assert(#transport.calls == 1, where .. ": " .. #transport.calls .. " requests")
        local encoded = bridge.url.formEncode(case.token)
        if case.settings.introspection_mode == "auth" then
          assert(request.headers.authorization == "Bearer " .. case.token, where .. ": Authorization header differs")
        elseif case.settings.introspection_mode == "get" then
          assert(request.url.target:sub(-#encoded) == encoded, where .. ": URL does not end with the token")
        else
          assert(request.body:find("token=" .. encoded .. "&", 1, true) == 1, where .. ": body does not start with the token")
        end
      end
    end
  end)
end)
