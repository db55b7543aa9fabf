
local ____modules = {}
local ____moduleCache = {}
local ____originalRequire = require
local function require(file, ...)
    if ____moduleCache[file] then
        return ____moduleCache[file].value
    end
    if ____modules[file] then
        local module = ____modules[file]
        local value = nil
        if (select("#", ...) > 0) then value = module(...) else value = module(file) end
        ____moduleCache[file] = { value = value }
        return value
    else
        if ____originalRequire then
            return ____originalRequire(file)
        else
            error("module '" .. file .. "' not found")
        end
    end
end
____modules = {
["lualib_bundle"] = function(...) 
local function __TS__StringIncludes(self, searchString, position)
    if not position then
        position = 1
    else
        position = position + 1
    end
    local index = string.find(self, searchString, position, true)
    return index ~= nil
end

local function __TS__ArraySort(self, compareFn)
    if compareFn ~= nil then
        table.sort(
            self,
            function(a, b) return compareFn(nil, a, b) < 0 end
        )
    else
        table.sort(self)
    end
    return self
end

local function __TS__ArraySlice(self, first, last)
    local len = #self
    first = first or 0
    if first < 0 then
        first = len + first
        if first < 0 then
            first = 0
        end
    else
        if first > len then
            first = len
        end
    end
    last = last or len
    if last < 0 then
        last = len + last
        if last < 0 then
            last = 0
        end
    else
        if last > len then
            last = len
        end
    end
    local out = {}
    first = first + 1
    last = last + 1
    local n = 1
    while first < last do
        out[n] = self[first]
        first = first + 1
        n = n + 1
    end
    return out
end

local function __TS__StringEndsWith(self, searchString, endPosition)
    if endPosition == nil or endPosition > #self then
        endPosition = #self
    end
    return string.sub(self, endPosition - #searchString + 1, endPosition) == searchString
end

local function __TS__ArraySome(self, callbackfn, thisArg)
    for i = 1, #self do
        if callbackfn(thisArg, self[i], i - 1, self) then
            return true
        end
    end
    return false
end

local function __TS__Class(self)
    local c = {prototype = {}}
    c.prototype.__index = c.prototype
    c.prototype.constructor = c
    return c
end

local function __TS__New(target, ...)
    local instance = setmetatable({}, target.prototype)
    instance:____constructor(...)
    return instance
end

local function __TS__StringStartsWith(self, searchString, position)
    if position == nil or position < 0 then
        position = 0
    end
    return string.sub(self, position + 1, #searchString + position) == searchString
end

local function __TS__ClassExtends(target, base)
    target.____super = base
    local staticMetatable = setmetatable({__index = base}, base)
    setmetatable(target, staticMetatable)
    local baseMetatable = getmetatable(base)
    if baseMetatable then
        if type(baseMetatable.__index) == "function" then
            staticMetatable.__index = baseMetatable.__index
        end
        if type(baseMetatable.__newindex) == "function" then
            staticMetatable.__newindex = baseMetatable.__newindex
        end
    end
    setmetatable(target.prototype, base.prototype)
    if type(base.prototype.__index) == "function" then
        target.prototype.__index = base.prototype.__index
    end
    if type(base.prototype.__newindex) == "function" then
        target.prototype.__newindex = base.prototype.__newindex
    end
    if type(base.prototype.__tostring) == "function" then
        target.prototype.__tostring = base.prototype.__tostring
    end
end

local Error, RangeError, ReferenceError, SyntaxError, TypeError, URIError
do
    local function getErrorStack(self, constructor)
        if debug == nil then
            return nil
        end
        local level = 1
        while true do
            local info = debug.getinfo(level, "f")
            level = level + 1
            if not info then
                level = 1
                break
            elseif info.func == constructor then
                break
            end
        end
        if __TS__StringIncludes(_VERSION, "Lua 5.0") then
            return debug.traceback(("[Level " .. tostring(level)) .. "]")
        elseif _VERSION == "Lua 5.1" then
            return string.sub(
                debug.traceback("", level),
                2
            )
        else
            return debug.traceback(nil, level)
        end
    end
    local function wrapErrorToString(self, getDescription)
        return function(self)
            local description = getDescription(self)
            local caller = debug.getinfo(3, "f")
            local isClassicLua = __TS__StringIncludes(_VERSION, "Lua 5.0")
            if isClassicLua or caller and caller.func ~= error then
                return description
            else
                return (description .. "\n") .. tostring(self.stack)
            end
        end
    end
    local function initErrorClass(self, Type, name)
        Type.name = name
        return setmetatable(
            Type,
            {__call = function(____, _self, message) return __TS__New(Type, message) end}
        )
    end
    local ____initErrorClass_1 = initErrorClass
    local ____class_0 = __TS__Class()
    ____class_0.name = ""
    function ____class_0.prototype.____constructor(self, message)
        if message == nil then
            message = ""
        end
        self.message = message
        self.name = "Error"
        self.stack = getErrorStack(nil, __TS__New)
        local metatable = getmetatable(self)
        if metatable and not metatable.__errorToStringPatched then
            metatable.__errorToStringPatched = true
            metatable.__tostring = wrapErrorToString(nil, metatable.__tostring)
        end
    end
    function ____class_0.prototype.__tostring(self)
        return self.message ~= "" and (self.name .. ": ") .. self.message or self.name
    end
    Error = ____initErrorClass_1(nil, ____class_0, "Error")
    local function createErrorClass(self, name)
        local ____initErrorClass_3 = initErrorClass
        local ____class_2 = __TS__Class()
        ____class_2.name = ____class_2.name
        __TS__ClassExtends(____class_2, Error)
        function ____class_2.prototype.____constructor(self, ...)
            ____class_2.____super.prototype.____constructor(self, ...)
            self.name = name
        end
        return ____initErrorClass_3(nil, ____class_2, name)
    end
    RangeError = createErrorClass(nil, "RangeError")
    ReferenceError = createErrorClass(nil, "ReferenceError")
    SyntaxError = createErrorClass(nil, "SyntaxError")
    TypeError = createErrorClass(nil, "TypeError")
    URIError = createErrorClass(nil, "URIError")
end

local __TS__Symbol, Symbol
do
    local symbolMetatable = {__tostring = function(self)
        return ("Symbol(" .. (self.description or "")) .. ")"
    end}
    function __TS__Symbol(description)
        return setmetatable({description = description}, symbolMetatable)
    end
    Symbol = {
        asyncDispose = __TS__Symbol("Symbol.asyncDispose"),
        dispose = __TS__Symbol("Symbol.dispose"),
        iterator = __TS__Symbol("Symbol.iterator"),
        hasInstance = __TS__Symbol("Symbol.hasInstance"),
        species = __TS__Symbol("Symbol.species"),
        toStringTag = __TS__Symbol("Symbol.toStringTag")
    }
end

local __TS__Iterator
do
    local function iteratorGeneratorStep(self)
        local co = self.____coroutine
        local status, value = coroutine.resume(co)
        if not status then
            error(value, 0)
        end
        if coroutine.status(co) == "dead" then
            return
        end
        return true, value
    end
    local function iteratorIteratorStep(self)
        local result = self:next()
        if result.done then
            return
        end
        return true, result.value
    end
    local function iteratorStringStep(self, index)
        index = index + 1
        if index > #self then
            return
        end
        return index, string.sub(self, index, index)
    end
    function __TS__Iterator(iterable)
        if type(iterable) == "string" then
            return iteratorStringStep, iterable, 0
        elseif iterable.____coroutine ~= nil then
            return iteratorGeneratorStep, iterable
        elseif iterable[Symbol.iterator] then
            local iterator = iterable[Symbol.iterator](iterable)
            return iteratorIteratorStep, iterator
        else
            return ipairs(iterable)
        end
    end
end

local Map
do
    Map = __TS__Class()
    Map.name = "Map"
    function Map.prototype.____constructor(self, entries)
        self[Symbol.toStringTag] = "Map"
        self.items = {}
        self.size = 0
        self.nextKey = {}
        self.previousKey = {}
        if entries == nil then
            return
        end
        local iterable = entries
        if iterable[Symbol.iterator] then
            local iterator = iterable[Symbol.iterator](iterable)
            while true do
                local result = iterator:next()
                if result.done then
                    break
                end
                local value = result.value
                self:set(value[1], value[2])
            end
        else
            local array = entries
            for ____, kvp in ipairs(array) do
                self:set(kvp[1], kvp[2])
            end
        end
    end
    function Map.prototype.clear(self)
        self.items = {}
        self.nextKey = {}
        self.previousKey = {}
        self.firstKey = nil
        self.lastKey = nil
        self.size = 0
    end
    function Map.prototype.delete(self, key)
        local contains = self:has(key)
        if contains then
            self.size = self.size - 1
            local next = self.nextKey[key]
            local previous = self.previousKey[key]
            if next ~= nil and previous ~= nil then
                self.nextKey[previous] = next
                self.previousKey[next] = previous
            elseif next ~= nil then
                self.firstKey = next
                self.previousKey[next] = nil
            elseif previous ~= nil then
                self.lastKey = previous
                self.nextKey[previous] = nil
            else
                self.firstKey = nil
                self.lastKey = nil
            end
            self.nextKey[key] = nil
            self.previousKey[key] = nil
        end
        self.items[key] = nil
        return contains
    end
    function Map.prototype.forEach(self, callback)
        for ____, key in __TS__Iterator(self:keys()) do
            callback(nil, self.items[key], key, self)
        end
    end
    function Map.prototype.get(self, key)
        return self.items[key]
    end
    function Map.prototype.has(self, key)
        return self.nextKey[key] ~= nil or self.lastKey == key
    end
    function Map.prototype.set(self, key, value)
        local isNewValue = not self:has(key)
        if isNewValue then
            self.size = self.size + 1
        end
        self.items[key] = value
        if self.firstKey == nil then
            self.firstKey = key
            self.lastKey = key
        elseif isNewValue then
            self.nextKey[self.lastKey] = key
            self.previousKey[key] = self.lastKey
            self.lastKey = key
        end
        return self
    end
    Map.prototype[Symbol.iterator] = function(self)
        return self:entries()
    end
    function Map.prototype.entries(self)
        local function getFirstKey()
            return self.firstKey
        end
        local items = self.items
        local nextKey = self.nextKey
        local key
        local started = false
        return {
            [Symbol.iterator] = function(self)
                return self
            end,
            next = function(self)
                if not started then
                    started = true
                    key = getFirstKey(nil)
                else
                    key = nextKey[key]
                end
                return {done = not key, value = {key, items[key]}}
            end
        }
    end
    function Map.prototype.keys(self)
        local function getFirstKey()
            return self.firstKey
        end
        local nextKey = self.nextKey
        local key
        local started = false
        return {
            [Symbol.iterator] = function(self)
                return self
            end,
            next = function(self)
                if not started then
                    started = true
                    key = getFirstKey(nil)
                else
                    key = nextKey[key]
                end
                return {done = not key, value = key}
            end
        }
    end
    function Map.prototype.values(self)
        local function getFirstKey()
            return self.firstKey
        end
        local items = self.items
        local nextKey = self.nextKey
        local key
        local started = false
        return {
            [Symbol.iterator] = function(self)
                return self
            end,
            next = function(self)
                if not started then
                    started = true
                    key = getFirstKey(nil)
                else
                    key = nextKey[key]
                end
                return {done = not key, value = items[key]}
            end
        }
    end
    Map[Symbol.species] = Map
end

local function __TS__ObjectEntries(obj)
    local result = {}
    local len = 0
    for key in pairs(obj) do
        len = len + 1
        result[len] = {key, obj[key]}
    end
    return result
end

local function __TS__ArrayIncludes(self, searchElement, fromIndex)
    if fromIndex == nil then
        fromIndex = 0
    end
    local len = #self
    local k = fromIndex
    if fromIndex < 0 then
        k = len + fromIndex
    end
    if k < 0 then
        k = 0
    end
    for i = k + 1, len do
        if self[i] == searchElement then
            return true
        end
    end
    return false
end

local function __TS__ObjectKeys(obj)
    local result = {}
    local len = 0
    for key in pairs(obj) do
        len = len + 1
        result[len] = key
    end
    return result
end

local function __TS__ArrayFilter(self, callbackfn, thisArg)
    local result = {}
    local len = 0
    for i = 1, #self do
        if callbackfn(thisArg, self[i], i - 1, self) then
            len = len + 1
            result[len] = self[i]
        end
    end
    return result
end

local function __TS__ArrayPush(self, ...)
    local items = {...}
    local len = #self
    for i = 1, #items do
        len = len + 1
        self[len] = items[i]
    end
    return len
end

local function __TS__ArrayFind(self, predicate, thisArg)
    for i = 1, #self do
        local elem = self[i]
        if predicate(thisArg, elem, i - 1, self) then
            return elem
        end
    end
    return nil
end

return {
  __TS__StringIncludes = __TS__StringIncludes,
  __TS__ArraySort = __TS__ArraySort,
  __TS__ArraySlice = __TS__ArraySlice,
  __TS__StringEndsWith = __TS__StringEndsWith,
  __TS__ArraySome = __TS__ArraySome,
  __TS__Class = __TS__Class,
  __TS__New = __TS__New,
  __TS__StringStartsWith = __TS__StringStartsWith,
  __TS__ClassExtends = __TS__ClassExtends,
  Error = Error,
  RangeError = RangeError,
  ReferenceError = ReferenceError,
  SyntaxError = SyntaxError,
  TypeError = TypeError,
  URIError = URIError,
  Map = Map,
  __TS__ObjectEntries = __TS__ObjectEntries,
  __TS__Iterator = __TS__Iterator,
  __TS__ArrayIncludes = __TS__ArrayIncludes,
  __TS__ObjectKeys = __TS__ObjectKeys,
  __TS__ArrayFilter = __TS__ArrayFilter,
  __TS__ArrayPush = __TS__ArrayPush,
  __TS__ArrayFind = __TS__ArrayFind
}
 end,
["claims"] = function(...) 
local ____lualib = require("lualib_bundle")
local __TS__StringIncludes = ____lualib.__TS__StringIncludes
local __TS__ArraySort = ____lualib.__TS__ArraySort
local __TS__ArraySlice = ____lualib.__TS__ArraySlice
local ____exports = {}
local LOGGED_CLAIM_BYTES
--- Returns a claim value or name for a log message: control characters and backslashes as \xNN,
-- cut after 256 bytes. Dovecot 2.3 writes the text after a line break as a log line of its own,
-- so a raw value could forge a log line.
function ____exports.loggableClaim(value)
    local escaped = string.gsub(
        value,
        "[%c\\]",
        function(character) return string.format(
            "\\x%02x",
            string.byte(character)
        ) end
    )
    return #escaped > LOGGED_CLAIM_BYTES and string.sub(escaped, 1, LOGGED_CLAIM_BYTES) .. "..." or escaped
end
--- Returns the claim `name`. A name with dots that is not itself a key is read as a path into
-- nested objects, so `ext.email` reaches Dex's {"ext": {"email": ...}}, while a claim whose name
-- contains dots, such as "https://example.com/email", is still found as it is.
function ____exports.lookupClaim(claims, name)
    local direct = claims[name]
    if direct ~= nil or not __TS__StringIncludes(name, ".") then
        return direct
    end
    local current = claims
    for part in string.gmatch(name, "[^.]+") do
        if type(current) ~= "table" then
            return nil
        end
        current = current[part]
    end
    local ____temp_0
    if type(current) == "userdata" then
        ____temp_0 = nil
    else
        ____temp_0 = current
    end
    return ____temp_0
end
--- Lists the top-level claim names, sorted, for log lines that must not show values.
function ____exports.claimNames(claims, limit)
    if limit == nil then
        limit = 20
    end
    local names = {}
    for name in pairs(claims) do
        names[#names + 1] = ____exports.loggableClaim(tostring(name))
    end
    __TS__ArraySort(names)
    local shown = table.concat(
        __TS__ArraySlice(names, 0, limit),
        ", "
    )
    if #names > limit then
        return shown .. ", ..."
    end
    return shown == "" and "(none)" or shown
end
--- Returns a string, number or boolean claim as its JSON text, or undefined for other types.
-- lua-cjson 2.1 decodes every number as a float, so 1000 is formatted without ".0".
function ____exports.claimText(value)
    if type(value) == "number" then
        local integer = math.tointeger(value)
        return integer ~= nil and tostring(integer) or tostring(value)
    end
    if type(value) == "string" or type(value) == "boolean" then
        return tostring(value)
    end
    return nil
end
--- Names a decoded JSON value's type for log messages, without showing the value.
function ____exports.jsonTypeName(value)
    local luaType = type(value)
    if luaType == "userdata" then
        return "null"
    end
    if luaType == "table" then
        return "object or array"
    end
    return luaType
end
--- Reads a claim that may be a space-separated string or an array of strings, as `scope` and
-- `aud` are sent. Returns the words, undefined when the claim is absent, or false when it has
-- another type.
function ____exports.readStringList(value)
    if value == nil then
        return nil
    end
    if type(value) == "string" then
        local words = {}
        for word in string.gmatch(value, "%S+") do
            words[#words + 1] = word
        end
        return words
    end
    if type(value) ~= "table" then
        return false
    end
    local ____table = value
    local words = {}
    local count = 0
    for key, item in pairs(____table) do
        count = count + 1
        if type(key) ~= "number" or type(item) ~= "string" then
            return false
        end
    end
    do
        local index = 1
        while index <= count do
            local item = ____table[index]
            if type(item) ~= "string" then
                return false
            end
            words[#words + 1] = item
            index = index + 1
        end
    end
    return words
end
LOGGED_CLAIM_BYTES = 256
return ____exports
 end,
["identity"] = function(...) 
local ____exports = {}
local findLastAt
local ____claims = require("claims")
local claimNames = ____claims.claimNames
local jsonTypeName = ____claims.jsonTypeName
local lookupClaim = ____claims.lookupClaim
--- Lowers ASCII letters only. The explicit [A-Z] class, unlike %u, does not depend on the locale.
function ____exports.normalizeName(name)
    return (string.gsub(
        name,
        "[A-Z]",
        function(letter) return string.char(string.byte(letter) + 32) end
    ))
end
--- Expands %u (the whole value), %n (the part before the last
-- 
-- @ ) and %d (the part after it), each
-- optionally as %Lu, %Ln, %Ld to lower it, and %% in `template`. Each part passes through
-- `transform` (for example LDAP filter escaping) after lowering.
function ____exports.expandVariables(template, value, transform)
    local at = findLastAt(value)
    local parts = {
        u = value,
        n = at == nil and value or string.sub(value, 1, at - 1),
        d = at == nil and "" or string.sub(value, at + 1)
    }
    local problem = nil
    local sawVariable = false
    local expanded = string.gsub(
        template,
        "%%(L?)(.?)",
        function(modifier, variable)
            if modifier == "" and variable == "%" then
                return "%"
            end
            local part = parts[variable]
            if part == nil then
                problem = ("contains the unsupported variable %" .. modifier) .. variable
                return ""
            end
            sawVariable = true
            return transform(modifier == "L" and ____exports.normalizeName(part) or part)
        end
    )
    if problem ~= nil then
        return nil, problem
    end
    if not sawVariable then
        return nil, "contains no %u, %n or %d variable"
    end
    return expanded
end
function findLastAt(value)
    local position = string.find(value, "@[^@]*$")
    return position
end
--- Expands a Dovecot-style username_format (%u, %n, %d, with an optional L modifier that lowers
-- the value, and %% for a percent sign) for one claim value. Returns the result, or undefined
-- and the problem.
function ____exports.expandUsernameFormat(format, value)
    return ____exports.expandVariables(
        format,
        value,
        function(part) return part end
    )
end
--- Reads the identity claim from a decoded response. Only a non-empty string counts: numbers,
-- booleans and tables are rejected by type, not by Lua truthiness. A missing claim's reason
-- lists the claim names that were present, without their values.
function ____exports.readIdentityClaim(claims, attribute)
    local value = lookupClaim(claims, attribute)
    if value == nil then
        return {
            ok = false,
            reason = ((("claim " .. attribute) .. " is missing (claims present: ") .. claimNames(claims)) .. ")"
        }
    end
    if type(value) ~= "string" then
        return {
            ok = false,
            reason = ((("claim " .. attribute) .. " is not a string (") .. jsonTypeName(value)) .. ")"
        }
    end
    if value == "" then
        return {ok = false, reason = ("claim " .. attribute) .. " is empty"}
    end
    return {ok = true, name = value}
end
return ____exports
 end,
["url"] = function(...) 
local ____lualib = require("lualib_bundle")
local __TS__StringIncludes = ____lualib.__TS__StringIncludes
local ____exports = {}
local socketUrl = require("socket.url")
--- Parses an absolute http(s) URL. Returns the URL, or undefined and the problem.
function ____exports.parseUrl(text, options)
    if options == nil then
        options = {}
    end
    if (string.find(text, "[%s%c]")) ~= nil then
        return nil, "it contains spaces or control characters"
    end
    local parts = socketUrl.parse(text)
    local ____opt_0 = parts.scheme
    local scheme = ____opt_0 and string.lower(parts.scheme)
    if scheme ~= "http" and scheme ~= "https" then
        return nil, "the scheme must be http or https"
    end
    if parts.host == nil or parts.host == "" then
        return nil, "the host is missing"
    end
    if __TS__StringIncludes(parts.host, ":") and (string.find(text, ("[" .. parts.host) .. "]", 1, true)) == nil then
        return nil, "the host is not a valid name or address"
    end
    if parts.fragment ~= nil then
        return nil, "a #fragment is not allowed"
    end
    local port = scheme == "https" and 443 or 80
    if parts.port ~= nil and parts.port ~= "" then
        local parsed = (string.match(parts.port, "^%d+$")) ~= nil and math.tointeger(tonumber(parts.port) or 0.5) or nil
        if parsed == nil or parsed < 1 or parsed > 65535 then
            return nil, "the port is not a number from 1 to 65535"
        end
        port = parsed
    end
    local target = (((parts.path == nil or parts.path == "") and "/" or parts.path) .. (parts.params == nil and "" or ";" .. parts.params)) .. (parts.query == nil and "" or "?" .. parts.query)
    if parts.userinfo == nil then
        return {
            text = text,
            scheme = scheme,
            host = string.lower(parts.host),
            port = port,
            target = target
        }
    end
    if options.allowCredentials ~= true then
        return nil, "credentials in the URL are not supported"
    end
    if parts.user == nil or parts.password == nil then
        return nil, "the credentials in the URL need a user and a password, as in https://id:secret@host/"
    end
    local withoutCredentials = socketUrl.build({
        scheme = parts.scheme,
        host = parts.host,
        port = parts.port,
        path = parts.path,
        params = parts.params,
        query = parts.query
    })
    return {
        text = withoutCredentials,
        scheme = scheme,
        host = string.lower(parts.host),
        port = port,
        target = target,
        credentials = {
            user = socketUrl.unescape(parts.user),
            password = socketUrl.unescape(parts.password)
        }
    }
end
--- Returns the URL with `suffix` appended, as for a token added to a tokeninfo URL.
function ____exports.appendToUrl(url, suffix)
    return {
        text = url.text .. suffix,
        scheme = url.scheme,
        host = url.host,
        port = url.port,
        target = url.target .. suffix
    }
end
--- Encodes a value for application/x-www-form-urlencoded (HTML's URL-encoded form serializer):
-- letters, digits and `*-._` stay, a space becomes `+`, every other byte becomes %XX.
function ____exports.formEncode(value)
    local encoded = string.gsub(
        value,
        "[^%w%*%-%._ ]",
        function(character) return string.format(
            "%%%02X",
            string.byte(character)
        ) end
    )
    return (string.gsub(encoded, " ", "+"))
end
return ____exports
 end,
["settings"] = function(...) 
local ____exports = {}
--- Every accepted key. The README's settings reference lists the same table.
____exports.KEYS = {
    introspection_url = {kind = "url", dovecot = true, description = "userinfo URL (modes auth and get) or RFC 7662 introspection URL (mode post)"},
    introspection_mode = {
        kind = "string",
        defaultValue = "auth",
        choices = {"auth", "get", "post"},
        dovecot = true,
        description = "auth: GET with a Bearer header; get: GET with the token appended; post: RFC 7662"
    },
    tokeninfo_url = {kind = "url", dovecot = true, description = "URL to which the token is appended for a first check, as Google's tokeninfo"},
    force_introspection = {kind = "boolean", defaultValue = "no", dovecot = true, description = "also ask introspection_url when tokeninfo_url already returned the login name"},
    openid_configuration_url = {kind = "url", description = "OIDC discovery document or issuer URL that provides the endpoints"},
    discovery_refresh_secs = {
        kind = "integer",
        defaultValue = "3600",
        min = 60,
        max = 604800,
        description = "how often each auth worker fetches the discovery document again, in seconds"
    },
    client_id = {kind = "string", dovecot = true, description = "OAuth2 client id for introspection (mode post)"},
    client_secret = {kind = "string", secret = true, dovecot = true, description = "OAuth2 client secret for introspection (mode post)"},
    client_auth_method = {kind = "string", defaultValue = "client_secret_basic", choices = {"client_secret_basic", "client_secret_post"}, description = "how the client authenticates to the introspection endpoint (RFC 6749 section 2.3.1)"},
    username_attribute = {kind = "string", defaultValue = "email", dovecot = true, description = "claim that contains the login name; a dotted path such as ext.email reaches nested claims"},
    username_format = {kind = "format", defaultValue = "%Lu", dovecot = true, description = "how the claim becomes a login name: %u whole value, %n local part, %d domain"},
    active_attribute = {kind = "string", dovecot = true, description = "claim that must equal active_value for the token to be accepted"},
    active_value = {kind = "string", dovecot = true, description = "value that active_attribute must have"},
    scope = {kind = "list", dovecot = true, description = "space-separated scopes; the token must have one of them (scope_match = any) or all"},
    scope_match = {kind = "string", defaultValue = "any", choices = {"any", "all"}, description = "whether the token needs any one or all of the scopes in scope"},
    audience = {kind = "list", description = "space-separated accepted audiences, matched against aud, azp and client_id"},
    issuers = {kind = "list", dovecot = true, description = "space-separated accepted iss values"},
    require_email_verified = {kind = "boolean", defaultValue = "no", description = "accept only tokens whose email_verified claim is JSON true"},
    clock_skew_secs = {
        kind = "integer",
        defaultValue = "30",
        min = 0,
        max = 3600,
        description = "seconds that exp may lie in the past before the token counts as expired"
    },
    pass_attrs = {kind = "attributes", dovecot = true, description = "passdb fields returned on success, e.g. proxy=y host=%{oauth2:mail_host}"},
    cache_ttl_secs = {
        kind = "integer",
        defaultValue = "60",
        min = 0,
        max = 86400,
        description = "how long an accepted token is reused without asking the identity provider; 0 turns the cache off"
    },
    cache_negative_ttl_secs = {
        kind = "integer",
        defaultValue = "0",
        min = 0,
        max = 300,
        description = "how long a rejected token stays rejected without asking again; 0 caches no rejections"
    },
    cache_size = {
        kind = "integer",
        defaultValue = "1000",
        min = 2,
        max = 1000000,
        description = "recently used tokens each auth worker keeps; up to twice as many are in memory"
    },
    tls_ca_cert_file = {kind = "path", dovecot = true, description = "PEM file with the CA certificates that sign the identity provider's certificate"},
    tls_allow_invalid_cert = {kind = "boolean", defaultValue = "no", dovecot = true, description = "skip certificate and host name verification (testing only)"},
    timeout_msecs = {
        kind = "integer",
        defaultValue = "5000",
        min = 1,
        max = 600000,
        dovecot = true,
        description = "time limit for one request to the identity provider, in milliseconds"
    },
    max_idle_time_msecs = {
        kind = "integer",
        defaultValue = "30000",
        min = 0,
        max = 3600000,
        dovecot = true,
        description = "how long an idle connection to the identity provider is kept for reuse, in milliseconds; 0 closes it"
    },
    max_response_bytes = {
        kind = "integer",
        defaultValue = "65536",
        min = 1024,
        max = 16777216,
        description = "largest response body accepted from the identity provider, in bytes"
    },
    account_source = {kind = "string", defaultValue = "postfix-accounts", choices = {"postfix-accounts", "passwd-file", "ldap"}, description = "where the list of mailboxes comes from"},
    account_file = {kind = "string", defaultValue = "/tmp/docker-mailserver/postfix-accounts.cf", description = "account file for the postfix-accounts and passwd-file sources"},
    ldap_uris = {kind = "list", description = "space-separated LDAP server URIs (ldap:// or ldaps://), tried in order"},
    ldap_base = {kind = "string", description = "search base for the user filter"},
    ldap_bind_dn = {kind = "string", description = "DN to bind as; anonymous when unset"},
    ldap_bind_password = {kind = "string", secret = true, description = "password of ldap_bind_dn"},
    ldap_bind_password_file = {kind = "path", description = "file whose first line is the password of ldap_bind_dn"},
    ldap_user_filter = {kind = "string", defaultValue = "(&(mail=%u)(mailEnabled=TRUE))", description = "filter that finds the mailbox's entry; %u, %n and %d are escaped per RFC 4515"},
    ldap_disabled_filter = {kind = "string", description = "filter that marks a found entry as disabled, e.g. (mailEnabled=FALSE)"},
    ldap_scope = {kind = "string", defaultValue = "subtree", choices = {"base", "onelevel", "subtree"}, description = "search scope below ldap_base"},
    ldap_starttls = {kind = "boolean", defaultValue = "no", description = "upgrade ldap:// connections with StartTLS and require it to succeed"}
}
--- Keys of Dovecot's oauth2 driver that this version does not implement.
____exports.DOVECOT_ONLY_KEYS = {
    "grant_url",
    "client_id_attribute",
    "local_validation_key_dict",
    "send_auth_headers",
    "use_grant_password",
    "rawlog_dir",
    "tls_ca_cert_dir",
    "tls_cert_file",
    "tls_key_file",
    "tls_cipher_suite",
    "max_parallel_connections",
    "max_pipelined_requests",
    "user_agent",
    "debug"
}
return ____exports
 end,
["verdict"] = function(...) 
local ____exports = {}
function ____exports.refuse(result, reason)
    return {ok = false, result = result, reason = reason}
end
return ____exports
 end,
["ldap-accounts"] = function(...) 
local ____lualib = require("lualib_bundle")
local __TS__StringEndsWith = ____lualib.__TS__StringEndsWith
local __TS__ArraySome = ____lualib.__TS__ArraySome
local __TS__Class = ____lualib.__TS__Class
local ____exports = {}
local ____identity = require("identity")
local expandVariables = ____identity.expandVariables
local normalizeName = ____identity.normalizeName
--- Loads lua-ldap on first use, so installs that keep accounts in files need not have it.
local function loadLualdap()
    local moduleName = "lualdap"
    return require(moduleName)
end
local UNREACHABLE_ERRORS = {"Can't contact LDAP server", "Timed out", "result timeout expired"}
--- Tells whether every server in a search error (one "; "-separated part per URI) failed to respond.
function ____exports.noServerAnswered(____error)
    for part in string.gmatch(____error, "[^;]+") do
        if not __TS__ArraySome(
            UNREACHABLE_ERRORS,
            function(____, message) return __TS__StringEndsWith(part, message) end
        ) then
            return false
        end
    end
    return true
end
--- Escapes a value for an LDAP search filter (RFC 4515 section 3): `*`, `(`, `)`, `\` and NUL
-- become \2a, \28, \29, \5c and \00, so a login name cannot change the filter's structure.
function ____exports.escapeFilterValue(value)
    return (string.gsub(
        value,
        "[%*%(%)\\%z]",
        function(character) return string.format(
            "\\%02x",
            string.byte(character)
        ) end
    ))
end
--- Expands %u, %n and %d (and %Lu, %Ln, %Ld) in a filter template with escaped parts of `name`.
function ____exports.expandFilter(template, name)
    return expandVariables(template, name, ____exports.escapeFilterValue)
end
____exports.LdapAccounts = __TS__Class()
local LdapAccounts = ____exports.LdapAccounts
LdapAccounts.name = "LdapAccounts"
function LdapAccounts.prototype.____constructor(self, settings)
    self.settings = settings
    self.location = ((table.concat(settings.ldap_uris, " ") .. " (") .. settings.ldap_base) .. ")"
end
function LdapAccounts.prototype.check(self)
    local base = self:search(self.settings.ldap_base, "base", "(objectClass=*)")
    if not base.ok then
        if ____exports.noServerAnswered(base.error) then
            dovecot.i_warning(("oauth2-bridge: account_source = ldap: " .. base.error) .. ". Token logins fail temporarily until the LDAP server answers")
            return nil
        end
        return base.error
    end
    if #base.dns == 0 then
        return ("ldap_base " .. self.settings.ldap_base) .. " was not found, or ldap_bind_dn may not read it"
    end
    local filter = ____exports.expandFilter(self.settings.ldap_user_filter, "start-up-check@invalid")
    local probe = self:search(self.settings.ldap_base, self.settings.ldap_scope, filter or "")
    local ____probe_ok_0
    if probe.ok then
        ____probe_ok_0 = nil
    else
        ____probe_ok_0 = "ldap_user_filter does not work: " .. probe.error
    end
    return ____probe_ok_0
end
function LdapAccounts.prototype.lookup(self, name, log)
    local filter, problem = ____exports.expandFilter(
        self.settings.ldap_user_filter,
        normalizeName(name)
    )
    if filter == nil then
        return {status = "unavailable", reason = "ldap_user_filter " .. problem}
    end
    local found = self:searchWithRetry(self.settings.ldap_base, self.settings.ldap_scope, filter, log)
    if not found.ok then
        return {status = "unavailable", reason = "LDAP search failed: " .. found.error}
    end
    if #found.dns == 0 then
        return {status = "missing"}
    end
    if #found.dns > 1 then
        return {status = "unavailable", reason = "LDAP search found more than one entry for the login name"}
    end
    log:debug("LDAP entry found: " .. found.dns[1])
    local disabledFilter = self.settings.ldap_disabled_filter
    if disabledFilter == nil then
        return {status = "found"}
    end
    local disabled = self:searchWithRetry(found.dns[1], "base", disabledFilter, log)
    if not disabled.ok then
        return {status = "unavailable", reason = "LDAP search failed: " .. disabled.error}
    end
    return #disabled.dns > 0 and ({status = "disabled"}) or ({status = "found"})
end
function LdapAccounts.prototype.searchWithRetry(self, base, scope, filter, log)
    local reused = self.connection ~= nil
    local first = self:search(base, scope, filter)
    if first.ok or not reused then
        return first
    end
    log:info(("LDAP search failed on the kept connection (" .. first.error) .. "), reconnecting")
    return self:search(base, scope, filter)
end
function LdapAccounts.prototype.search(self, base, scope, filter)
    local connected = self:connect()
    if not connected.ok then
        return connected
    end
    local connection = connected.connection
    local dns = {}
    local readError = nil
    local completed, searchError = pcall(function()
        local next = connection:search({
            base = base,
            scope = scope,
            filter = filter,
            attrs = {"1.1"},
            sizelimit = 2
        })
        while true do
            local dn, message = next()
            if dn == nil then
                readError = message
                break
            end
            dns[#dns + 1] = dn
        end
    end)
    if not completed or readError ~= nil then
        self:disconnect()
        return {
            ok = false,
            error = completed and tostring(readError) or tostring(searchError)
        }
    end
    return {ok = true, dns = dns}
end
function LdapAccounts.prototype.connect(self)
    if self.connection ~= nil then
        return {ok = true, connection = self.connection}
    end
    local errors = {}
    for ____, uri in ipairs(self.settings.ldap_uris) do
        local completed, result = pcall(function()
            local connection, openError = loadLualdap().open_simple(uri, self.settings.ldap_bind_dn, self.settings.ldap_bind_password, self.settings.ldap_starttls)
            return {connection = connection, openError = openError}
        end)
        if completed and result.connection ~= nil then
            self.connection = result.connection
            return {ok = true, connection = result.connection}
        end
        errors[#errors + 1] = (uri .. ": ") .. (completed and tostring(result.openError) or tostring(result))
    end
    return {
        ok = false,
        error = "cannot connect: " .. table.concat(errors, "; ")
    }
end
function LdapAccounts.prototype.disconnect(self)
    local connection = self.connection
    self.connection = nil
    if connection ~= nil then
        pcall(function() return connection:close() end)
    end
end
return ____exports
 end,
["accounts"] = function(...) 
local ____lualib = require("lualib_bundle")
local __TS__New = ____lualib.__TS__New
local ____exports = {}
local ____account_2Dfile = require("account-file")
local PasswdFile = ____account_2Dfile.PasswdFile
local PostfixAccountsFile = ____account_2Dfile.PostfixAccountsFile
local ____ldap_2Daccounts = require("ldap-accounts")
local LdapAccounts = ____ldap_2Daccounts.LdapAccounts
--- Builds the account source that the settings name.
function ____exports.createAccountSource(settings)
    repeat
        local ____switch3 = settings.account_source
        local ____cond3 = ____switch3 == "postfix-accounts"
        if ____cond3 then
            return __TS__New(PostfixAccountsFile, settings.account_file)
        end
        ____cond3 = ____cond3 or ____switch3 == "passwd-file"
        if ____cond3 then
            return __TS__New(PasswdFile, settings.account_file)
        end
        ____cond3 = ____cond3 or ____switch3 == "ldap"
        if ____cond3 then
            return __TS__New(LdapAccounts, settings)
        end
    until true
end
return ____exports
 end,
["name-set"] = function(...) 
local ____lualib = require("lualib_bundle")
local __TS__Class = ____lualib.__TS__Class
local ____exports = {}
--- Names per bucket on average; a lookup scans one bucket string of about this many names.
local NAMES_PER_BUCKET = 16
local MIN_BUCKETS = 64
--- FNV-1a, 32 bits: cheap in Lua and spreads similar names (user1, user2, ...) well.
local function hashName(name)
    local hash = 2166136261
    do
        local index = 1
        while index <= #name do
            hash = (hash ~ string.byte(name, index)) * 16777619 & 4294967295
            index = index + 1
        end
    end
    return hash
end
____exports.NameSet = __TS__Class()
local NameSet = ____exports.NameSet
NameSet.name = "NameSet"
function NameSet.prototype.____constructor(self, names)
    self.buckets = {}
    local bucketCount = MIN_BUCKETS
    while bucketCount * NAMES_PER_BUCKET < #names do
        bucketCount = bucketCount * 2
    end
    self.mask = bucketCount - 1
    local grouped = {}
    local seen = {}
    local size = 0
    for ____, name in ipairs(names) do
        do
            if seen[name] ~= nil then
                goto __continue7
            end
            seen[name] = true
            size = size + 1
            local index = hashName(name) & self.mask
            local group = grouped[index]
            if group == nil then
                grouped[index] = {name}
            else
                group[#group + 1] = name
            end
        end
        ::__continue7::
    end
    for index, group in pairs(grouped) do
        self.buckets[index] = ("\n" .. table.concat(group, "\n")) .. "\n"
    end
    self.size = size
end
function NameSet.prototype.has(self, name)
    if name == "" or (string.find(name, "[\n\r%z]")) ~= nil then
        return false
    end
    local bucket = self.buckets[hashName(name) & self.mask]
    return bucket ~= nil and (string.find(bucket, ("\n" .. name) .. "\n", 1, true)) ~= nil
end
return ____exports
 end,
["account-file"] = function(...) 
local ____lualib = require("lualib_bundle")
local __TS__Class = ____lualib.__TS__Class
local __TS__New = ____lualib.__TS__New
local __TS__ArraySlice = ____lualib.__TS__ArraySlice
local __TS__StringStartsWith = ____lualib.__TS__StringStartsWith
local __TS__ClassExtends = ____lualib.__TS__ClassExtends
local ____exports = {}
local fingerprintOf, sameFingerprint
local lfs = require("lfs")
local ____identity = require("identity")
local normalizeName = ____identity.normalizeName
local ____name_2Dset = require("name-set")
local NameSet = ____name_2Dset.NameSet
function fingerprintOf(attributes)
    return {
        dev = attributes.dev,
        ino = attributes.ino,
        size = attributes.size,
        modification = attributes.modification,
        change = attributes.change
    }
end
function sameFingerprint(a, b)
    return a.dev == b.dev and a.ino == b.ino and a.size == b.size and a.modification == b.modification and a.change == b.change
end
--- A file with one account per line, `#` comments and blank lines. A file caught half-written
-- never yields a wrong name: a line is an account only when its field separator follows the
-- name, so a cut-off last line is skipped as malformed.
____exports.AccountFile = __TS__Class()
local AccountFile = ____exports.AccountFile
AccountFile.name = "AccountFile"
function AccountFile.prototype.____constructor(self, path, parseLine)
    self.path = path
    self.parseLine = parseLine
    self.names = __TS__New(NameSet, {})
    self.racy = true
    self.location = path
end
function AccountFile.prototype.lookup(self, name, log)
    local reloadProblem = self:refresh(function(report)
        log:info(((("Account list loaded from " .. self.path) .. ": ") .. tostring(report.accounts)) .. " accounts")
        if #report.malformedLines > 0 then
            local lines = table.concat(
                __TS__ArraySlice(report.malformedLines, 0, 10),
                ", "
            )
            log:warning((("Account list " .. self.path) .. ": skipped malformed lines ") .. lines)
        end
    end)
    if reloadProblem ~= nil then
        return {status = "unavailable", reason = reloadProblem}
    end
    return self.names:has(normalizeName(name)) and ({status = "found"}) or ({status = "missing"})
end
function AccountFile.prototype.check(self)
    return self:refresh()
end
function AccountFile.prototype.refresh(self, onReload)
    local attributes, statError = lfs.attributes(self.path)
    if attributes == nil then
        return (("cannot read " .. self.path) .. ": ") .. statError
    end
    local current = fingerprintOf(attributes)
    if not self.racy and self.fingerprint ~= nil and sameFingerprint(self.fingerprint, current) then
        return nil
    end
    local file, openError = io.open(self.path, "r")
    if file == nil then
        return (("cannot read " .. self.path) .. ": ") .. openError
    end
    local text = file:read("a")
    file:close()
    if text == nil then
        return "cannot read " .. self.path
    end
    local previousCount = self.names.size
    local changed = self.fingerprint == nil or not sameFingerprint(self.fingerprint, current)
    local report = self:load(text)
    self.fingerprint = current
    self.racy = current.modification >= os.time() - 1 or current.change >= os.time() - 1
    if changed or report.accounts ~= previousCount then
        if onReload ~= nil then
            onReload(report)
        end
    end
    return nil
end
function AccountFile.prototype.load(self, text)
    local names = {}
    local malformedLines = {}
    local lineNumber = 0
    for line in string.gmatch(text .. "\n", "([^\n]*)\n") do
        do
            lineNumber = lineNumber + 1
            local trimmed = (string.match(line, "^%s*(.-)%s*$")) or ""
            if trimmed == "" or __TS__StringStartsWith(trimmed, "#") then
                goto __continue15
            end
            local name = self.parseLine(trimmed)
            if name == nil then
                malformedLines[#malformedLines + 1] = lineNumber
                goto __continue15
            end
            names[#names + 1] = normalizeName(name)
        end
        ::__continue15::
    end
    self.names = __TS__New(NameSet, names)
    return {accounts = self.names.size, malformedLines = malformedLines}
end
--- docker-mailserver's postfix-accounts.cf: one `address|password-hash` line per mailbox, with
-- optional further `|` fields. Aliases live in postfix-virtual.cf and are not accounts.
____exports.PostfixAccountsFile = __TS__Class()
local PostfixAccountsFile = ____exports.PostfixAccountsFile
PostfixAccountsFile.name = "PostfixAccountsFile"
__TS__ClassExtends(PostfixAccountsFile, ____exports.AccountFile)
function PostfixAccountsFile.prototype.____constructor(self, path)
    PostfixAccountsFile.____super.prototype.____constructor(
        self,
        path,
        function(line) return (string.match(line, "^([^|%s]+@[^|%s]+)|")) end
    )
end
--- Dovecot's passwd-file format: the user name before the first `:`. Do not use
-- docker-mailserver's generated /etc/dovecot/userdb here: with quotas enabled it also lists
-- aliases, each pointing at another person's mailbox.
____exports.PasswdFile = __TS__Class()
local PasswdFile = ____exports.PasswdFile
PasswdFile.name = "PasswdFile"
__TS__ClassExtends(PasswdFile, ____exports.AccountFile)
function PasswdFile.prototype.____constructor(self, path)
    PasswdFile.____super.prototype.____constructor(
        self,
        path,
        function(line) return (string.match(line, "^([^:%s]+):")) end
    )
end
return ____exports
 end,
["pass-attrs"] = function(...) 
local ____lualib = require("lualib_bundle")
local __TS__StringIncludes = ____lualib.__TS__StringIncludes
local ____exports = {}
local checkTemplate, expandTemplate
local ____claims = require("claims")
local claimText = ____claims.claimText
local lookupClaim = ____claims.lookupClaim
function checkTemplate(template)
    local withoutVariables = (string.gsub(template, "%%{oauth2:[^}]+}", ""))
    local withoutPercents = (string.gsub(withoutVariables, "%%%%", ""))
    if __TS__StringIncludes(withoutPercents, "%") then
        return "only %{oauth2:claim} variables and %% are supported"
    end
    return nil
end
function expandTemplate(template, claims)
    local pieces = {}
    local position = 1
    while position <= #template do
        do
            local percent = string.find(template, "%", position, true)
            if percent == nil then
                pieces[#pieces + 1] = string.sub(template, position)
                break
            end
            pieces[#pieces + 1] = string.sub(template, position, percent - 1)
            if string.sub(template, percent + 1, percent + 1) == "%" then
                pieces[#pieces + 1] = "%"
                position = percent + 2
                goto __continue12
            end
            local ____, last, claimName = string.find(template, "^{oauth2:([^}]+)}", percent + 1)
            local claim = lookupClaim(claims, claimName)
            pieces[#pieces + 1] = type(claim) == "boolean" and "" or (claimText(claim) or "")
            position = last + 1
        end
        ::__continue12::
    end
    return table.concat(pieces, "")
end
--- Parses space-separated name=value pairs. Returns them, or undefined and the problem.
function ____exports.parsePassAttributes(value)
    local attributes = {}
    for item in string.gmatch(value, "%S+") do
        local name, template = string.match(item, "^([%w_%-%.]+)=(.*)$")
        if name == nil or template == nil then
            return nil, ("contains \"" .. item) .. "\", which is not a name=value pair"
        end
        local problem = checkTemplate(template)
        if problem ~= nil then
            return nil, (name .. ": ") .. problem
        end
        attributes[#attributes + 1] = {name = name, template = template}
    end
    return attributes
end
--- Builds the passdb fields for a successful login. A claim that is missing, or is not a string
-- or a number, expands to an empty string, as in Dovecot.
function ____exports.expandPassAttributes(attributes, claims)
    local fields = {}
    for ____, attribute in ipairs(attributes) do
        fields[attribute.name] = expandTemplate(attribute.template, claims)
    end
    return fields
end
return ____exports
 end,
["config"] = function(...) 
local ____lualib = require("lualib_bundle")
local __TS__Class = ____lualib.__TS__Class
local Error = ____lualib.Error
local RangeError = ____lualib.RangeError
local ReferenceError = ____lualib.ReferenceError
local SyntaxError = ____lualib.SyntaxError
local TypeError = ____lualib.TypeError
local URIError = ____lualib.URIError
local __TS__ClassExtends = ____lualib.__TS__ClassExtends
local __TS__New = ____lualib.__TS__New
local Map = ____lualib.Map
local __TS__ObjectEntries = ____lualib.__TS__ObjectEntries
local __TS__Iterator = ____lualib.__TS__Iterator
local __TS__StringStartsWith = ____lualib.__TS__StringStartsWith
local __TS__ArrayIncludes = ____lualib.__TS__ArrayIncludes
local __TS__ObjectKeys = ____lualib.__TS__ObjectKeys
local __TS__ArraySort = ____lualib.__TS__ArraySort
local __TS__StringEndsWith = ____lualib.__TS__StringEndsWith
local __TS__StringIncludes = ____lualib.__TS__StringIncludes
local ____exports = {}
local parseLines, checkKnownKey, convertValue, checkReadableFile, moveUrlCredentials, checkAccountSource, readFirstLine, checkCrossFieldRules, splitWords, trim, unquote
local lfs = require("lfs")
local ____identity = require("identity")
local expandUsernameFormat = ____identity.expandUsernameFormat
local ____pass_2Dattrs = require("pass-attrs")
local parsePassAttributes = ____pass_2Dattrs.parsePassAttributes
local ____settings = require("settings")
local DOVECOT_ONLY_KEYS = ____settings.DOVECOT_ONLY_KEYS
local KEYS = ____settings.KEYS
local ____url = require("url")
local parseUrl = ____url.parseUrl
--- Parses and validates settings text. `origin` names the file in error messages.
function ____exports.parseSettings(text, origin)
    local explicit = parseLines(text, origin)
    local raw = __TS__New(Map, explicit)
    if not raw:has("introspection_url") and not raw:has("tokeninfo_url") and not raw:has("openid_configuration_url") then
        error(
            __TS__New(____exports.SettingsError, ((origin .. ": introspection_url is missing. Set it to the identity provider's userinfo URL, ") .. "e.g. introspection_url = https://idp.example.com/application/o/userinfo/, ") .. "or set tokeninfo_url or openid_configuration_url"),
            0
        )
    end
    for ____, ____value in ipairs(__TS__ObjectEntries(KEYS)) do
        local key = ____value[1]
        local spec = ____value[2]
        if not raw:has(key) and spec.defaultValue ~= nil then
            raw:set(key, spec.defaultValue)
        end
    end
    local values = {}
    for ____, ____value in ipairs(__TS__ObjectEntries(KEYS)) do
        local key = ____value[1]
        local spec = ____value[2]
        if spec.kind == "list" or spec.kind == "attributes" then
            values[key] = {}
        end
    end
    for ____, ____value in __TS__Iterator(raw) do
        local key = ____value[1]
        local value = ____value[2]
        values[key] = convertValue(key, KEYS[key], value, origin)
    end
    moveUrlCredentials(values, origin)
    checkAccountSource(values, explicit, origin)
    checkCrossFieldRules(values, origin)
    return values
end
function parseLines(text, origin)
    local raw = __TS__New(Map)
    local lineNumber = 0
    for line in string.gmatch(text .. "\n", "([^\n]*)\n") do
        do
            lineNumber = lineNumber + 1
            local trimmed = trim(line)
            if trimmed == "" or __TS__StringStartsWith(trimmed, "#") then
                goto __continue15
            end
            local key, rawValue = string.match(trimmed, "^([%w_]+)%s*=%s*(.-)$")
            if key == nil or rawValue == nil then
                error(
                    __TS__New(
                        ____exports.SettingsError,
                        ((origin .. " line ") .. tostring(lineNumber)) .. ": expected \"key = value\". Fix the line or comment it out with #"
                    ),
                    0
                )
            end
            checkKnownKey(key, origin, lineNumber)
            if raw:has(key) then
                error(
                    __TS__New(
                        ____exports.SettingsError,
                        ((((((origin .. " line ") .. tostring(lineNumber)) .. ": ") .. key) .. " is set twice. Keep only one ") .. key) .. " line"
                    ),
                    0
                )
            end
            local value = unquote(rawValue)
            if value ~= "" then
                raw:set(key, value)
            end
        end
        ::__continue15::
    end
    return raw
end
function checkKnownKey(key, origin, lineNumber)
    if KEYS[key] ~= nil then
        return
    end
    if __TS__ArrayIncludes(DOVECOT_ONLY_KEYS, key) then
        error(
            __TS__New(
                ____exports.SettingsError,
                (((((origin .. " line ") .. tostring(lineNumber)) .. ": ") .. key) .. " is a setting of Dovecot's oauth2 driver that this ") .. "version of the bridge does not support. Remove the line"
            ),
            0
        )
    end
    local known = table.concat(
        __TS__ArraySort(__TS__ObjectKeys(KEYS)),
        ", "
    )
    error(
        __TS__New(
            ____exports.SettingsError,
            (((((origin .. " line ") .. tostring(lineNumber)) .. ": unknown setting ") .. key) .. ". Check the spelling. Known settings: ") .. known
        ),
        0
    )
end
function convertValue(key, spec, value, origin)
    local function fail(problem, fix)
        local visible = spec.kind == "url" and (string.gsub(value, "//.*@", "//(credentials hidden)@")) or value
        local shown = spec.secret == true and "(hidden)" or ("\"" .. visible) .. "\""
        error(
            __TS__New(____exports.SettingsError, (((((((origin .. ": ") .. key) .. " = ") .. shown) .. " ") .. problem) .. ". ") .. fix),
            0
        )
    end
    if spec.choices ~= nil and not __TS__ArrayIncludes(spec.choices, value) then
        return fail(
            "is not supported",
            "Use one of: " .. table.concat(spec.choices, ", ")
        )
    end
    repeat
        local ____switch26 = spec.kind
        local ____cond26 = ____switch26 == "url"
        if ____cond26 then
            do
                local url, problem = parseUrl(value, {allowCredentials = key == "introspection_url"})
                return url or fail(("is not a valid URL (" .. problem) .. ")", "Use an absolute http:// or https:// URL")
            end
        end
        ____cond26 = ____cond26 or ____switch26 == "boolean"
        if ____cond26 then
            do
                local lowered = string.lower(value)
                if lowered == "yes" or lowered == "true" then
                    return true
                end
                if lowered == "no" or lowered == "false" then
                    return false
                end
                return fail("is not a boolean", "Use yes or no")
            end
        end
        ____cond26 = ____cond26 or ____switch26 == "integer"
        if ____cond26 then
            do
                local parsed = (string.match(value, "^%d+$")) ~= nil and math.tointeger(tonumber(value) or 0.5) or nil
                if parsed == nil then
                    return fail(
                        "is not a whole number",
                        (("Use a number from " .. tostring(spec.min)) .. " to ") .. tostring(spec.max)
                    )
                end
                if parsed < (spec.min or 0) or parsed > (spec.max or math.maxinteger) then
                    return fail(
                        "is out of range",
                        (("Use a number from " .. tostring(spec.min)) .. " to ") .. tostring(spec.max)
                    )
                end
                return parsed
            end
        end
        ____cond26 = ____cond26 or ____switch26 == "list"
        if ____cond26 then
            return splitWords(value)
        end
        ____cond26 = ____cond26 or ____switch26 == "format"
        if ____cond26 then
            do
                local ____, problem = expandUsernameFormat(value, "user@example.com")
                return problem == nil and value or fail(problem, "Use %u, %n or %d, optionally as %Lu, %Ln or %Ld")
            end
        end
        ____cond26 = ____cond26 or ____switch26 == "attributes"
        if ____cond26 then
            do
                local attributes, problem = parsePassAttributes(value)
                return attributes or fail(problem, "Use space-separated name=value pairs, with %{oauth2:claim} variables")
            end
        end
        ____cond26 = ____cond26 or ____switch26 == "path"
        if ____cond26 then
            return checkReadableFile(value, fail)
        end
        ____cond26 = ____cond26 or ____switch26 == "string"
        if ____cond26 then
            return value
        end
    until true
end
function checkReadableFile(path, fail)
    local file, openError = io.open(path, "r")
    if file == nil then
        return fail(("cannot be read (" .. openError) .. ")", "Check the path and its permissions for the auth worker")
    end
    file:close()
    local attributes = lfs.attributes(path)
    if attributes == nil or attributes.mode ~= "file" then
        return fail("is not a regular file", "Check the path and its permissions for the auth worker")
    end
    return path
end
function moveUrlCredentials(values, origin)
    local url = values.introspection_url
    if (url and url.credentials) == nil then
        return
    end
    if values.introspection_mode ~= "post" then
        error(
            __TS__New(____exports.SettingsError, (origin .. ": introspection_url contains client credentials, which are only sent with ") .. "introspection_mode = post. Remove them from the URL, or set introspection_mode = post"),
            0
        )
    end
    if values.client_id ~= nil or values.client_secret ~= nil then
        error(
            __TS__New(____exports.SettingsError, (origin .. ": introspection_url contains client credentials and client_id or client_secret is ") .. "set too. Remove the credentials from the URL"),
            0
        )
    end
    values.client_id = url.credentials.user
    values.client_secret = url.credentials.password
end
function checkAccountSource(values, explicit, origin)
    local source = values.account_source
    local function fail(message)
        error(
            __TS__New(____exports.SettingsError, (origin .. ": ") .. message),
            0
        )
    end
    if source ~= "ldap" then
        for ____, key in __TS__Iterator(explicit:keys()) do
            if __TS__StringStartsWith(key, "ldap_") then
                fail((((key .. " is set, but account_source = ") .. source) .. ". Set account_source = ldap, or remove ") .. key)
            end
        end
        if source == "passwd-file" and not explicit:has("account_file") then
            fail("account_source = passwd-file needs account_file, the path of the passwd-file")
        end
        checkReadableFile(
            values.account_file,
            function(problem, fix) return fail((((("account_file = \"" .. tostring(values.account_file)) .. "\" ") .. problem) .. ". ") .. fix) end
        )
        return
    end
    if #values.ldap_uris == 0 then
        fail("account_source = ldap needs ldap_uris, e.g. ldap_uris = ldap://ldap.example.com")
    end
    for ____, uri in ipairs(values.ldap_uris) do
        if (string.match(uri, "^ldaps?://[^%s]+$")) == nil then
            fail(("ldap_uris contains \"" .. uri) .. "\", which is not an ldap:// or ldaps:// URI")
        end
    end
    if values.ldap_base == nil then
        fail("account_source = ldap needs ldap_base, e.g. ldap_base = ou=people,dc=example,dc=com")
    end
    if values.ldap_bind_password ~= nil and values.ldap_bind_password_file ~= nil then
        fail("ldap_bind_password and ldap_bind_password_file are both set. Keep one of them")
    end
    if values.ldap_bind_password_file ~= nil then
        local password = readFirstLine(values.ldap_bind_password_file)
        if password == "" then
            fail(("ldap_bind_password_file " .. tostring(values.ldap_bind_password_file)) .. " is empty. Put the password on its first line")
        end
        values.ldap_bind_password = password
    end
    if values.ldap_bind_password ~= nil and values.ldap_bind_dn == nil then
        fail("a bind password is set but ldap_bind_dn is not. Set ldap_bind_dn, or remove the password")
    end
    for ____, key in ipairs({"ldap_user_filter", "ldap_disabled_filter"}) do
        local filter = values[key]
        if filter ~= nil and not (__TS__StringStartsWith(filter, "(") and __TS__StringEndsWith(filter, ")")) then
            fail(((key .. " = \"") .. filter) .. "\" is not an LDAP filter. Wrap it in parentheses, e.g. (mail=%u)")
        end
    end
    local disabledFilter = values.ldap_disabled_filter
    if disabledFilter ~= nil and __TS__StringIncludes(disabledFilter, "%") then
        fail((("ldap_disabled_filter = \"" .. disabledFilter) .. "\" contains %, but it is matched against the found ") .. "entry itself and takes no variables. Remove them, e.g. (mailEnabled=FALSE)")
    end
    local ____, problem = expandUsernameFormat(values.ldap_user_filter, "user@example.com")
    if problem ~= nil then
        fail(("ldap_user_filter " .. problem) .. ". Use %u for the login name, or %n and %d for its parts")
    end
end
function readFirstLine(path)
    local file = io.open(path, "r")
    local line = file and file:read("l")
    if file ~= nil then
        file:close()
    end
    return (string.gsub(line or "", "\r$", ""))
end
function checkCrossFieldRules(settings, origin)
    local function fail(message)
        error(
            __TS__New(____exports.SettingsError, (origin .. ": ") .. message),
            0
        )
    end
    local hasIntrospectionEndpoint = settings.introspection_url ~= nil or settings.openid_configuration_url ~= nil
    if settings.introspection_mode == "post" then
        if not hasIntrospectionEndpoint then
            fail("introspection_mode = post needs introspection_url or openid_configuration_url")
        end
        if settings.client_id == nil or settings.client_secret == nil then
            fail("introspection_mode = post needs client_id and client_secret, because the introspection " .. "endpoint authenticates the client (RFC 7662 section 2.1)")
        end
    end
    if settings.force_introspection and (settings.tokeninfo_url == nil or not hasIntrospectionEndpoint) then
        fail("force_introspection = yes needs tokeninfo_url and introspection_url (or openid_configuration_url)")
    end
    if settings.active_attribute == nil ~= (settings.active_value == nil) then
        fail("active_attribute and active_value must be set together. Set both, or remove both")
    end
end
function splitWords(value)
    local words = {}
    for word in string.gmatch(value, "%S+") do
        words[#words + 1] = word
    end
    return words
end
function trim(text)
    return (string.match(text, "^%s*(.-)%s*$")) or ""
end
function unquote(value)
    local inner = string.match(value, "^\"(.*)\"$")
    if inner ~= nil then
        return inner
    end
    local single = string.match(value, "^'(.*)'$")
    return single or value
end
do
    local ____settings = require("settings")
    ____exports.KEYS = ____settings.KEYS
end
____exports.DEFAULT_SETTINGS_PATH = "/etc/dovecot/oauth2-bridge.conf"
____exports.SETTINGS_PATH_VARIABLE = "OAUTH2_BRIDGE_CONFIG"
--- A configuration mistake. The message names the key and the fix.
____exports.SettingsError = __TS__Class()
local SettingsError = ____exports.SettingsError
SettingsError.name = "SettingsError"
__TS__ClassExtends(SettingsError, Error)
--- Reads, parses and validates the settings file. Raises SettingsError on any mistake.
function ____exports.loadSettings(path)
    local file, openError = io.open(path, "r")
    if file == nil then
        error(
            __TS__New(____exports.SettingsError, (("cannot read the settings file: " .. openError) .. ". Create it, or point the ") .. ____exports.SETTINGS_PATH_VARIABLE .. " environment variable at it (import_environment in dovecot.conf)"),
            0
        )
    end
    local text = file:read("a") or ""
    file:close()
    return ____exports.parseSettings(text, path)
end
return ____exports
 end,
["connection"] = function(...) 
local ____lualib = require("lualib_bundle")
local __TS__New = ____lualib.__TS__New
local __TS__Class = ____lualib.__TS__Class
local __TS__StringIncludes = ____lualib.__TS__StringIncludes
local __TS__ArraySome = ____lualib.__TS__ArraySome
local __TS__StringStartsWith = ____lualib.__TS__StringStartsWith
local ____exports = {}
local isIpAddress, dnsNameMatches, SUBJECT_ALT_NAME_OID
local socket = require("socket")
local ssl = require("ssl")
function isIpAddress(host)
    return (string.match(host, "^%d+%.%d+%.%d+%.%d+$")) ~= nil or __TS__StringIncludes(host, ":")
end
--- Checks the certificate's subjectAltName against the host (RFC 6125): IP addresses against
-- iPAddress entries, names against dNSName entries, where "*" may stand for the whole leftmost
-- label only. The subject's common name is not used.
function ____exports.certificateNamesHost(certificate, host)
    local altNames = certificate:extensions()[SUBJECT_ALT_NAME_OID]
    if altNames == nil then
        return false
    end
    local wanted = string.lower(host)
    if isIpAddress(wanted) then
        return __TS__ArraySome(
            altNames.iPAddress or ({}),
            function(____, address) return string.lower(address) == wanted end
        )
    end
    return __TS__ArraySome(
        altNames.dNSName or ({}),
        function(____, name) return dnsNameMatches(
            string.lower(name),
            wanted
        ) end
    )
end
function dnsNameMatches(pattern, host)
    if not __TS__StringStartsWith(pattern, "*.") then
        return pattern == host
    end
    local dot = string.find(host, ".", 1, true)
    if dot == nil or dot == 1 then
        return false
    end
    local suffix = string.sub(host, dot)
    return suffix == string.sub(pattern, 2) and (string.find(suffix, ".", 2, true)) ~= nil
end
SUBJECT_ALT_NAME_OID = "2.5.29.17"
local SYSTEM_CA_DIRECTORY = "/etc/ssl/certs"
--- Opens a connection, TLS included, within `deadline` (seconds, socket.gettime() clock).
function ____exports.openConnection(options, deadline)
    local tcp, ____error = socket.tcp()
    if tcp == nil then
        return {ok = false, error = ____error}
    end
    local connection = __TS__New(____exports.Connection, tcp, options)
    connection.deadline = deadline
    local connected, connectError = connection:connect()
    if connected == nil then
        connection:close()
        return {ok = false, error = connectError}
    end
    return {ok = true, connection = connection}
end
____exports.Connection = __TS__Class()
local Connection = ____exports.Connection
Connection.name = "Connection"
function Connection.prototype.____constructor(self, tcp, options)
    self.options = options
    self.deadline = 0
    self.idleSince = 0
    self.sock = tcp
end
function Connection.prototype.connect(self)
    if not self:applyDeadline() then
        return nil, "timeout"
    end
    local connected, connectError = self.sock:connect(self.options.host, self.options.port)
    if connected == nil then
        return nil, connectError
    end
    if not self.options.tls then
        return 1
    end
    return self:startTls()
end
function Connection.prototype.send(self, data)
    if not self:applyDeadline() then
        return nil, "timeout", 0
    end
    return self.sock:send(data)
end
function Connection.prototype.receive(self, pattern)
    if not self:applyDeadline() then
        return nil, "timeout", nil
    end
    return self.sock:receive(pattern)
end
function Connection.prototype.close(self)
    self.sock:close()
end
function Connection.prototype.isReusable(self)
    if self.sock:dirty() then
        return false
    end
    local readable = socket.select({self.sock}, {}, 0)
    return readable == nil or #readable == 0
end
function Connection.prototype.applyDeadline(self)
    local remaining = self.deadline - socket.gettime()
    if remaining <= 0 then
        return false
    end
    self.sock:settimeout(remaining)
    return true
end
function Connection.prototype.startTls(self)
    local params = {
        mode = "client",
        protocol = "any",
        options = {
            "all",
            "no_sslv2",
            "no_sslv3",
            "no_tlsv1",
            "no_tlsv1_1"
        },
        verify = self.options.verifyCertificate and "peer" or "none",
        cafile = self.options.caFile,
        capath = self.options.caFile == nil and SYSTEM_CA_DIRECTORY or nil
    }
    local conn, wrapError = ssl.wrap(self.sock, params)
    if conn == nil then
        return nil, "TLS setup failed: " .. wrapError
    end
    self.sock = conn
    if not isIpAddress(self.options.host) then
        conn:sni(self.options.host)
    end
    if not self:applyDeadline() then
        return nil, "timeout"
    end
    local done, handshakeError = conn:dohandshake()
    if done ~= true then
        return nil, "TLS handshake failed: " .. handshakeError
    end
    if self.options.verifyCertificate then
        local certificate = conn:getpeercertificate()
        if certificate == nil or not ____exports.certificateNamesHost(certificate, self.options.host) then
            return nil, "TLS certificate does not name " .. self.options.host
        end
    end
    return 1
end
return ____exports
 end,
["http"] = function(...) 
local ____lualib = require("lualib_bundle")
local __TS__StringIncludes = ____lualib.__TS__StringIncludes
local __TS__ObjectEntries = ____lualib.__TS__ObjectEntries
local ____exports = {}
local open, takeIdle, putIdle, exchange, requestText, receiveHeaders, receiveBody, receiveChunked, USER_AGENT, MAX_HEADER_LINES, MAX_LINE_BYTES, idle
local socket = require("socket")
local ____connection = require("connection")
local openConnection = ____connection.openConnection
function open(request, deadline)
    local url = request.url
    return openConnection({
        tls = url.scheme == "https",
        host = url.host,
        port = url.port,
        verifyCertificate = not request.options.allowInvalidCertificate,
        caFile = request.options.caFile
    }, deadline)
end
function takeIdle(origin, options)
    local connection = idle[origin]
    if connection == nil then
        return nil
    end
    idle[origin] = nil
    local idleSeconds = socket.gettime() - connection.idleSince
    if idleSeconds * 1000 > (options.maxIdleMsecs or 0) or not connection:isReusable() then
        connection:close()
        return nil
    end
    return connection
end
function putIdle(origin, connection)
    local ____opt_0 = idle[origin]
    if ____opt_0 ~= nil then
        ____opt_0:close()
    end
    connection.idleSince = socket.gettime()
    idle[origin] = connection
end
function exchange(connection, request)
    local sent, sendError = connection:send(requestText(request))
    if sent == nil then
        return {ok = false, error = sendError, beforeResponse = true}
    end
    local statusLine, statusError, partial = connection:receive("*l")
    if statusLine == nil then
        local beforeResponse = statusError == "closed" and (partial == nil or partial == "")
        return {ok = false, error = statusError, beforeResponse = beforeResponse}
    end
    local version, statusText = string.match(statusLine, "^HTTP/(1%.[01]) (%d%d%d)")
    if version == nil or statusText == nil then
        return {ok = false, error = "the reply is not HTTP/1.x", beforeResponse = false}
    end
    local headers = receiveHeaders(connection)
    if not headers.ok then
        return {ok = false, error = headers.error, beforeResponse = false}
    end
    local status = tonumber(statusText)
    local body = receiveBody(connection, request, status, headers.headers)
    if not body.ok then
        return {ok = false, error = body.error, beforeResponse = false}
    end
    local connectionHeader = string.lower(headers.headers.connection or "")
    local ____body_delimited_3 = body.delimited
    if ____body_delimited_3 then
        local ____temp_2
        if version == "1.1" then
            ____temp_2 = not __TS__StringIncludes(connectionHeader, "close")
        else
            ____temp_2 = __TS__StringIncludes(connectionHeader, "keep-alive")
        end
        ____body_delimited_3 = ____temp_2
    end
    local keepAlive = ____body_delimited_3
    return {ok = true, response = {ok = true, status = status, headers = headers.headers, body = body.body}, keepAlive = keepAlive}
end
function requestText(request)
    local url = request.url
    local defaultPort = url.scheme == "https" and 443 or 80
    local host = __TS__StringIncludes(url.host, ":") and ("[" .. url.host) .. "]" or url.host
    local lines = {
        ((request.method .. " ") .. url.target) .. " HTTP/1.1",
        "host: " .. (url.port == defaultPort and host or (host .. ":") .. tostring(url.port)),
        "user-agent: " .. USER_AGENT
    }
    for ____, ____value in ipairs(__TS__ObjectEntries(request.headers)) do
        local name = ____value[1]
        local value = ____value[2]
        lines[#lines + 1] = (name .. ": ") .. value
    end
    if request.body ~= nil then
        lines[#lines + 1] = "content-length: " .. tostring(#request.body)
    end
    return (table.concat(lines, "\r\n") .. "\r\n\r\n") .. (request.body or "")
end
function receiveHeaders(connection)
    local headers = {}
    do
        local count = 0
        while count <= MAX_HEADER_LINES do
            local line, ____error = connection:receive("*l")
            if line == nil then
                return {ok = false, error = ____error}
            end
            if line == "" then
                return {ok = true, headers = headers}
            end
            if #line > MAX_LINE_BYTES then
                return {ok = false, error = "response header line too long"}
            end
            local name, value = string.match(line, "^([^:%s]+):%s*(.-)%s*$")
            if name == nil or value == nil then
                return {ok = false, error = "invalid response header"}
            end
            local key = string.lower(name)
            local previous = headers[key]
            headers[key] = previous == nil and value or (previous .. ", ") .. value
            count = count + 1
        end
    end
    return {ok = false, error = "too many response headers"}
end
function receiveBody(connection, request, status, headers)
    local limit = request.options.maxResponseBytes
    if status == 204 or status == 304 or status >= 100 and status < 200 then
        return {ok = true, body = "", delimited = true}
    end
    if __TS__StringIncludes(
        string.lower(headers["transfer-encoding"] or ""),
        "chunked"
    ) then
        return receiveChunked(connection, limit)
    end
    local lengthText = headers["content-length"]
    if lengthText ~= nil then
        local length = (string.match(lengthText, "^%d+$")) ~= nil and math.tointeger(tonumber(lengthText) or 0.5) or nil
        if length == nil then
            return {ok = false, error = "invalid content-length"}
        end
        if length > limit then
            return {
                ok = false,
                error = ("response body larger than " .. tostring(limit)) .. " bytes"
            }
        end
        if length == 0 then
            return {ok = true, body = "", delimited = true}
        end
        local body, ____error = connection:receive(length)
        return body == nil and ({ok = false, error = ____error}) or ({ok = true, body = body, delimited = true})
    end
    local chunks = {}
    local received = 0
    while true do
        local chunk, ____error, partial = connection:receive(8192)
        local data = chunk or partial or ""
        received = received + #data
        if received > limit then
            return {
                ok = false,
                error = ("response body larger than " .. tostring(limit)) .. " bytes"
            }
        end
        chunks[#chunks + 1] = data
        if chunk == nil then
            return ____error == "closed" and ({
                ok = true,
                body = table.concat(chunks, ""),
                delimited = false
            }) or ({ok = false, error = ____error})
        end
    end
end
function receiveChunked(connection, limit)
    local chunks = {}
    local received = 0
    while true do
        local sizeLine, ____error = connection:receive("*l")
        if sizeLine == nil then
            return {ok = false, error = ____error}
        end
        local sizeText = string.match(sizeLine, "^(%x+)")
        if sizeText == nil then
            return {ok = false, error = "invalid chunk size"}
        end
        local size = tonumber(sizeText, 16)
        if size == 0 then
            while true do
                local trailer, trailerError = connection:receive("*l")
                if trailer == nil then
                    return {ok = false, error = trailerError}
                end
                if trailer == "" then
                    return {
                        ok = true,
                        body = table.concat(chunks, ""),
                        delimited = true
                    }
                end
            end
        end
        received = received + size
        if received > limit then
            return {
                ok = false,
                error = ("response body larger than " .. tostring(limit)) .. " bytes"
            }
        end
        local chunk, chunkError = connection:receive(size)
        if chunk == nil then
            return {ok = false, error = chunkError}
        end
        chunks[#chunks + 1] = chunk
        local ____, crlfError = connection:receive("*l")
        if crlfError ~= nil then
            return {ok = false, error = crlfError}
        end
    end
end
USER_AGENT = "dovecot-oauth2-bridge"
MAX_HEADER_LINES = 100
MAX_LINE_BYTES = 8192
idle = {}
--- Sends a request over a kept or a new connection.
function ____exports.httpRequest(request)
    local url = request.url
    local origin = (((url.scheme .. "://") .. url.host) .. ":") .. tostring(url.port)
    local deadline = socket.gettime() + request.options.timeoutMsecs / 1000
    local connection = takeIdle(origin, request.options)
    local reused = connection ~= nil
    if connection == nil then
        local opened = open(request, deadline)
        if not opened.ok then
            return opened
        end
        connection = opened.connection
    end
    connection.deadline = deadline
    local result = exchange(connection, request)
    if not result.ok and result.beforeResponse and reused and request.method == "GET" then
        connection:close()
        local opened = open(request, deadline)
        if not opened.ok then
            return opened
        end
        connection = opened.connection
        connection.deadline = deadline
        result = exchange(connection, request)
    end
    if not result.ok then
        connection:close()
        return {ok = false, error = result.error}
    end
    if result.keepAlive and (request.options.maxIdleMsecs or 0) > 0 then
        putIdle(origin, connection)
    else
        connection:close()
    end
    return result.response
end
--- Closes every kept connection, as at script_deinit.
function ____exports.closeIdleConnections()
    for origin, connection in pairs(idle) do
        connection:close()
        idle[origin] = nil
    end
end
return ____exports
 end,
["json"] = function(...) 
local ____exports = {}
local cjsonModule = require("cjson")
local cjson = cjsonModule.new()
cjson.decode_max_depth(32)
cjson.decode_invalid_numbers(false)
--- Decodes a JSON object. JSON null becomes absent (nil) in the returned table, so no caller can
-- mistake cjson.null for a value. Arrays, scalars and invalid JSON are rejected.
function ____exports.decodeObject(text)
    if utf8.len(text) == nil then
        return {ok = false, problem = "body is not valid UTF-8"}
    end
    local decoded, value = pcall(function() return cjson.decode(text) end)
    if not decoded then
        return {ok = false, problem = "body is not valid JSON"}
    end
    if type(value) ~= "table" then
        return {ok = false, problem = "body is not a JSON object"}
    end
    local object = value
    if #object > 0 or (next(object)) == nil then
        return {ok = false, problem = "body is not a JSON object"}
    end
    for key in pairs(object) do
        if type(key) ~= "string" then
            return {ok = false, problem = "body is not a JSON object"}
        end
    end
    local result = {}
    local nullMembers = {}
    for key, member in pairs(object) do
        if member == cjson.null or member == cjsonModule.null then
            nullMembers[key] = true
        else
            result[key] = member
        end
    end
    return {ok = true, object = result, nullMembers = nullMembers}
end
return ____exports
 end,
["policy"] = function(...) 
local ____lualib = require("lualib_bundle")
local __TS__ArrayIncludes = ____lualib.__TS__ArrayIncludes
local __TS__ArrayFilter = ____lualib.__TS__ArrayFilter
local __TS__ArraySome = ____lualib.__TS__ArraySome
local ____exports = {}
local ____claims = require("claims")
local claimText = ____claims.claimText
local jsonTypeName = ____claims.jsonTypeName
local loggableClaim = ____claims.loggableClaim
local readStringList = ____claims.readStringList
local ____verdict = require("verdict")
local refuse = ____verdict.refuse
--- Checks `active` before anything else. With `required` (RFC 7662 responses) the member must be
-- there; when present, only JSON true means the token is usable, so `"active": null` refuses too.
function ____exports.checkActive(claims, nullClaims, required)
    if required == nil then
        required = false
    end
    local active = claims.active
    if nullClaims.active ~= nil or active ~= nil and active ~= true then
        return refuse("PASSWORD_MISMATCH", "Token is not active")
    end
    if required and active == nil then
        return refuse("INTERNAL_FAILURE", "Introspection response has no active member (RFC 7662 section 2.2)")
    end
    return nil
end
--- Checks active_attribute = active_value, compared as strings, as Dovecot's oauth2 driver does.
function ____exports.checkActiveAttribute(settings, claims)
    local attribute = settings.active_attribute
    if attribute == nil then
        return nil
    end
    local value = claims[attribute]
    local text = claimText(value)
    if text ~= settings.active_value then
        return refuse("PASSWORD_MISMATCH", ("Token is not active: claim " .. attribute) .. " does not have the active_value")
    end
    return nil
end
--- Reads `exp`: a number or a numeric string (as Google's tokeninfo sends it) of seconds since
-- the epoch. Returns undefined when absent, and false when it is neither, which cannot be trusted.
function ____exports.readExpiry(claims)
    local exp = claims.exp
    if exp == nil then
        return nil
    end
    local seconds = nil
    if type(exp) == "number" then
        seconds = exp
    elseif type(exp) == "string" and (string.match(exp, "^%d+%.?%d*$")) ~= nil then
        seconds = tonumber(exp)
    end
    local ____temp_0
    if seconds == nil or seconds ~= seconds or seconds == math.huge then
        ____temp_0 = false
    else
        ____temp_0 = seconds
    end
    return ____temp_0
end
--- Checks `exp` when present, allowing `skewSeconds` of clock difference.
function ____exports.checkExpiry(claims, now, skewSeconds)
    if skewSeconds == nil then
        skewSeconds = 0
    end
    local seconds = ____exports.readExpiry(claims)
    if seconds == nil then
        return nil
    end
    if seconds == false then
        return refuse(
            "INTERNAL_FAILURE",
            ("Claim exp is not a number (" .. jsonTypeName(claims.exp)) .. ")"
        )
    end
    if seconds + skewSeconds <= now then
        return refuse("PASSWORD_MISMATCH", "Token has expired")
    end
    return nil
end
--- Checks the required scopes against `scope`, or `scp` when `scope` is absent.
function ____exports.checkScope(settings, claims)
    if #settings.scope == 0 then
        return nil
    end
    local claimName = claims.scope ~= nil and "scope" or "scp"
    local granted = readStringList(claims[claimName])
    if granted == false then
        return refuse("INTERNAL_FAILURE", ("Claim " .. claimName) .. " is neither a string nor an array of strings")
    end
    if granted == nil then
        return refuse("PASSWORD_MISMATCH", "Token has no scope claim, and scope is required")
    end
    local held = __TS__ArrayFilter(
        settings.scope,
        function(____, wanted) return __TS__ArrayIncludes(granted, wanted) end
    )
    local ____temp_1
    if settings.scope_match == "all" then
        ____temp_1 = #held == #settings.scope
    else
        ____temp_1 = #held > 0
    end
    local enough = ____temp_1
    if not enough then
        local needed = settings.scope_match == "all" and "all of" or "one of"
        return refuse(
            "PASSWORD_MISMATCH",
            ((("Token lacks the required scope (" .. needed) .. ": ") .. table.concat(settings.scope, " ")) .. ")"
        )
    end
    return nil
end
--- Checks the accepted audiences against `aud` (string or array), `azp` and `client_id`.
function ____exports.checkAudience(settings, claims)
    if #settings.audience == 0 then
        return nil
    end
    local audiences = readStringList(claims.aud)
    if audiences == false then
        return refuse("INTERNAL_FAILURE", "Claim aud is neither a string nor an array of strings")
    end
    local candidates = {table.unpack(audiences or ({}))}
    for ____, name in ipairs({"azp", "client_id"}) do
        local value = claims[name]
        if type(value) == "string" then
            candidates[#candidates + 1] = value
        end
    end
    if not __TS__ArraySome(
        candidates,
        function(____, candidate) return __TS__ArrayIncludes(settings.audience, candidate) end
    ) then
        return refuse("PASSWORD_MISMATCH", "Token is not for an accepted audience (aud, azp, client_id)")
    end
    return nil
end
--- Checks `iss` against the accepted issuers.
function ____exports.checkIssuer(settings, claims)
    if #settings.issuers == 0 then
        return nil
    end
    local issuer = claims.iss
    if issuer == nil then
        return refuse("PASSWORD_MISMATCH", "Token has no iss claim, and issuers is set")
    end
    if type(issuer) ~= "string" then
        return refuse(
            "INTERNAL_FAILURE",
            ("Claim iss is not a string (" .. jsonTypeName(issuer)) .. ")"
        )
    end
    if not __TS__ArrayIncludes(settings.issuers, issuer) then
        return refuse(
            "PASSWORD_MISMATCH",
            ("Token issuer " .. loggableClaim(issuer)) .. " is not in issuers"
        )
    end
    return nil
end
--- Requires email_verified to be JSON true, when the settings ask for it.
function ____exports.checkEmailVerified(settings, claims)
    if not settings.require_email_verified or claims.email_verified == true then
        return nil
    end
    return refuse("PASSWORD_MISMATCH", "Claim email_verified is not true, and require_email_verified = yes")
end
--- Runs every policy check after `active`, in order, and returns the first refusal.
function ____exports.checkPolicy(settings, claims, now)
    return ____exports.checkActiveAttribute(settings, claims) or ____exports.checkExpiry(claims, now, settings.clock_skew_secs) or ____exports.checkIssuer(settings, claims) or ____exports.checkAudience(settings, claims) or ____exports.checkScope(settings, claims) or ____exports.checkEmailVerified(settings, claims)
end
return ____exports
 end,
["validation"] = function(...) 
local ____lualib = require("lualib_bundle")
local __TS__ArrayPush = ____lualib.__TS__ArrayPush
local __TS__ArrayIncludes = ____lualib.__TS__ArrayIncludes
local ____exports = {}
local send
local mime = require("mime")
local ____policy = require("policy")
local checkActive = ____policy.checkActive
local ____json = require("json")
local decodeObject = ____json.decodeObject
local ____url = require("url")
local appendToUrl = ____url.appendToUrl
local formEncode = ____url.formEncode
local ____verdict = require("verdict")
local refuse = ____verdict.refuse
function send(stage, request, tokenRejectedStatuses, transport, log, activeRequired)
    local url = request.url
    local where = (url.host .. ":") .. tostring(url.port)
    log:debug((((((stage .. " request: ") .. request.method) .. " ") .. url.scheme) .. "://") .. where)
    local response = transport(request)
    if not response.ok then
        return refuse("INTERNAL_FAILURE", ((((stage .. " request failed: ") .. response.error) .. " (") .. where) .. ")")
    end
    log:debug(((((stage .. " response: HTTP ") .. tostring(response.status)) .. ", ") .. tostring(#response.body)) .. " bytes")
    local status = response.status
    if __TS__ArrayIncludes(tokenRejectedStatuses, status) then
        return refuse(
            "PASSWORD_MISMATCH",
            (("Token rejected by the identity provider: HTTP " .. tostring(status)) .. " from ") .. where
        )
    end
    if stage == "Introspection" and (status == 401 or status == 403) then
        return refuse(
            "INTERNAL_FAILURE",
            ((("Introspection request failed: HTTP " .. tostring(status)) .. " from ") .. where) .. ". Check client_id and client_secret"
        )
    end
    if status >= 300 and status < 400 then
        return refuse(
            "INTERNAL_FAILURE",
            ((((stage .. " request failed: HTTP ") .. tostring(status)) .. " redirect from ") .. where) .. " not followed"
        )
    end
    if status ~= 200 then
        return refuse(
            "INTERNAL_FAILURE",
            (((stage .. " request failed: HTTP ") .. tostring(status)) .. " from ") .. where
        )
    end
    local decoded = decodeObject(response.body)
    if not decoded.ok then
        return refuse("INTERNAL_FAILURE", ((((stage .. " request failed: ") .. decoded.problem) .. " (HTTP 200 from ") .. where) .. ")")
    end
    local inactive = checkActive(decoded.object, decoded.nullMembers, activeRequired)
    if inactive ~= nil then
        return inactive
    end
    return {ok = true, claims = decoded.object, nullClaims = decoded.nullMembers}
end
function ____exports.httpOptions(settings)
    return {
        timeoutMsecs = settings.timeout_msecs,
        maxResponseBytes = settings.max_response_bytes,
        caFile = settings.tls_ca_cert_file,
        allowInvalidCertificate = settings.tls_allow_invalid_cert,
        maxIdleMsecs = settings.max_idle_time_msecs
    }
end
--- Asks a userinfo endpoint, with the token as a Bearer credential (RFC 6750 section 2.1).
function ____exports.queryUserinfo(settings, url, token, transport, log)
    local request = {
        method = "GET",
        url = url,
        headers = {authorization = "Bearer " .. token, accept = "application/json"},
        options = ____exports.httpOptions(settings)
    }
    return send(
        "Userinfo",
        request,
        {401, 403},
        transport,
        log,
        false
    )
end
--- Queries an endpoint that takes the token in its URL. Google's tokeninfo returns 400 for an
-- invalid token, so 400 counts as a rejected token here too.
function ____exports.queryTokenUrl(settings, url, token, stage, transport, log)
    local request = {
        method = "GET",
        url = appendToUrl(
            url,
            formEncode(token)
        ),
        headers = {accept = "application/json"},
        options = ____exports.httpOptions(settings)
    }
    return send(
        stage,
        request,
        {400, 401, 403},
        transport,
        log,
        false
    )
end
--- Asks an RFC 7662 introspection endpoint. A 401 or 403 here means the endpoint rejected our
-- client credentials, not the token, so it is an INTERNAL_FAILURE.
function ____exports.queryIntrospection(settings, url, token, transport, log)
    local clientId = settings.client_id or ""
    local clientSecret = settings.client_secret or ""
    local form = {
        "token=" .. formEncode(token),
        "token_type_hint=access_token"
    }
    local headers = {accept = "application/json", ["content-type"] = "application/x-www-form-urlencoded"}
    if settings.client_auth_method == "client_secret_post" then
        __TS__ArrayPush(
            form,
            "client_id=" .. formEncode(clientId),
            "client_secret=" .. formEncode(clientSecret)
        )
    else
        local encoded = mime.b64((formEncode(clientId) .. ":") .. formEncode(clientSecret))
        headers.authorization = "Basic " .. (encoded or "")
    end
    local request = {
        method = "POST",
        url = url,
        headers = headers,
        body = table.concat(form, "&"),
        options = ____exports.httpOptions(settings)
    }
    return send(
        "Introspection",
        request,
        {},
        transport,
        log,
        true
    )
end
return ____exports
 end,
["discovery"] = function(...) 
local ____lualib = require("lualib_bundle")
local __TS__StringEndsWith = ____lualib.__TS__StringEndsWith
local __TS__Class = ____lualib.__TS__Class
local ____exports = {}
local ____json = require("json")
local decodeObject = ____json.decodeObject
local ____url = require("url")
local parseUrl = ____url.parseUrl
local ____validation = require("validation")
local httpOptions = ____validation.httpOptions
local ____verdict = require("verdict")
local refuse = ____verdict.refuse
local WELL_KNOWN_PATH = "/.well-known/openid-configuration"
--- Seconds between attempts after a failed fetch, so a down provider is not asked on every login.
local RETRY_SECONDS = 10
--- The discovery document's URL, and the issuer it must name when the setting was an issuer URL.
function ____exports.discoveryTarget(configured)
    if __TS__StringEndsWith(configured.text, WELL_KNOWN_PATH) then
        return {url = configured}
    end
    local issuer = (string.gsub(configured.text, "/+$", ""))
    local url = parseUrl(issuer .. WELL_KNOWN_PATH)
    return {url = url or configured, expectedIssuer = issuer}
end
____exports.Discovery = __TS__Class()
local Discovery = ____exports.Discovery
Discovery.name = "Discovery"
function Discovery.prototype.____constructor(self, settings, configured)
    self.settings = settings
    self.configured = configured
    self.nextFetchAt = 0
end
function Discovery.prototype.resolve(self, transport, now, log)
    if now < self.nextFetchAt then
        return self.endpoints or refuse(
            "INTERNAL_FAILURE",
            "OpenID discovery failed: " .. tostring(self.lastError)
        )
    end
    local fetched = self:fetch(transport, log)
    if fetched.ok then
        self.endpoints = fetched
        self.nextFetchAt = now + self.settings.discovery_refresh_secs
        return fetched
    end
    self.lastError = fetched.reason
    self.nextFetchAt = now + RETRY_SECONDS
    if self.endpoints ~= nil then
        log:warning("OpenID discovery refresh failed, using the previous document: " .. fetched.reason)
        return self.endpoints
    end
    return refuse("INTERNAL_FAILURE", "OpenID discovery failed: " .. fetched.reason)
end
function Discovery.prototype.fetch(self, transport, log)
    local target = ____exports.discoveryTarget(self.configured)
    local where = (target.url.host .. ":") .. tostring(target.url.port)
    log:debug((("OpenID discovery request: GET " .. target.url.scheme) .. "://") .. where)
    local request = {
        method = "GET",
        url = target.url,
        headers = {accept = "application/json"},
        options = httpOptions(self.settings)
    }
    local response = transport(request)
    if not response.ok then
        return refuse("INTERNAL_FAILURE", ((response.error .. " (") .. where) .. ")")
    end
    if response.status ~= 200 then
        return refuse(
            "INTERNAL_FAILURE",
            (("HTTP " .. tostring(response.status)) .. " from ") .. where
        )
    end
    local decoded = decodeObject(response.body)
    if not decoded.ok then
        return refuse("INTERNAL_FAILURE", ((decoded.problem .. " (") .. where) .. ")")
    end
    return self:readDocument(decoded.object, target.expectedIssuer, where)
end
function Discovery.prototype.readDocument(self, document, expectedIssuer, where)
    local issuer = document.issuer
    if expectedIssuer ~= nil and (type(issuer) ~= "string" or (string.gsub(issuer, "/+$", "")) ~= expectedIssuer) then
        return refuse("INTERNAL_FAILURE", ("the document from " .. where) .. " names another issuer")
    end
    local endpoints = {ok = true}
    for ____, ____value in ipairs({{"userinfo_endpoint", "userinfo"}, {"introspection_endpoint", "introspection"}}) do
        local member = ____value[1]
        local field = ____value[2]
        do
            local value = document[member]
            if value == nil then
                goto __continue15
            end
            if type(value) ~= "string" then
                return refuse("INTERNAL_FAILURE", ((member .. " in the document from ") .. where) .. " is not a string")
            end
            local url, problem = parseUrl(value)
            if url == nil then
                return refuse("INTERNAL_FAILURE", (((member .. " in the document from ") .. where) .. " is invalid: ") .. problem)
            end
            if self.configured.scheme == "https" and url.scheme ~= "https" then
                return refuse("INTERNAL_FAILURE", ((member .. " in the document from ") .. where) .. " is not https")
            end
            endpoints[field] = url
        end
        ::__continue15::
    end
    return endpoints
end
return ____exports
 end,
["dovecot24"] = function(...) 
local ____lualib = require("lualib_bundle")
local __TS__ArraySort = ____lualib.__TS__ArraySort
local __TS__ArrayFind = ____lualib.__TS__ArrayFind
local ____exports = {}
local REQUIRED_RESULT = "return-fail"
local TOKEN_MECHANISMS = {"xoauth2", "oauthbearer"}
--- Turns the lua_settings table that Dovecot 2.4 passes to script_init into settings file text.
function ____exports.settingsTextFromTable(luaSettings)
    local lines = {}
    for key, value in pairs(luaSettings) do
        local text = tostring(value)
        if (string.find(text, "[\r\n]")) ~= nil then
            error(("lua_settings " .. key) .. " contains a line break, which no setting accepts", 0)
        end
        lines[#lines + 1] = ((key .. " = \"") .. text) .. "\""
    end
    __TS__ArraySort(lines)
    return table.concat(lines, "\n") .. "\n"
end
--- Reads the top-level settings and the passdb blocks from `doveconf -n` output.
function ____exports.parseDoveconf(text)
    local global = {}
    local passdbs = {}
    local depth = 0
    local current = nil
    for line in string.gmatch(text .. "\n", "([^\n]*)\n") do
        do
            local trimmed = (string.match(line, "^%s*(.-)%s*$")) or ""
            if (string.match(trimmed, "{$")) ~= nil then
                local name = string.match(trimmed, "^passdb%s+(%S+)%s*{$")
                if depth == 0 and name ~= nil then
                    current = {name = name, settings = {}}
                    passdbs[#passdbs + 1] = current
                end
                depth = depth + 1
                goto __continue6
            end
            if trimmed == "}" then
                depth = depth - 1
                if depth == 0 then
                    current = nil
                end
                goto __continue6
            end
            local key, value = string.match(trimmed, "^([%w_]+)%s*=%s*(.-)$")
            if key == nil or value == nil then
                goto __continue6
            end
            if depth == 0 then
                global[key] = value
            elseif depth == 1 and current ~= nil then
                current.settings[key] = value
            end
        end
        ::__continue6::
    end
    return {global = global, passdbs = passdbs}
end
--- Checks that the passdb block running `scriptPath` cannot fail open. Returns the problem and
-- its fix, or undefined when the configuration is fail-closed.
function ____exports.checkFailClosed(doveconfOutput, scriptPath)
    local ____exports_parseDoveconf_result_0 = ____exports.parseDoveconf(doveconfOutput)
    local global = ____exports_parseDoveconf_result_0.global
    local passdbs = ____exports_parseDoveconf_result_0.passdbs
    local own = __TS__ArrayFind(
        passdbs,
        function(____, block) return block.settings.lua_file == scriptPath end
    )
    if own == nil then
        return ("no passdb block with lua_file = " .. scriptPath) .. " was found in doveconf -n"
    end
    local problems = {}
    for ____, result in ipairs({"result_failure", "result_internalfail"}) do
        local value = own.settings[result] or global["passdb_" .. result] or "continue"
        if value ~= REQUIRED_RESULT then
            problems[#problems + 1] = (result .. " = ") .. value
        end
    end
    local filter = string.lower(own.settings.mechanisms_filter or "")
    for ____, mechanism in ipairs(TOKEN_MECHANISMS) do
        if (string.find((" " .. filter) .. " ", (" " .. mechanism) .. " ", 1, true)) == nil then
            problems[#problems + 1] = "mechanisms_filter lacks " .. mechanism
        end
    end
    if #problems == 0 then
        return nil
    end
    return ((((("passdb " .. own.name) .. " would let token logins through without the bridge's checks (") .. table.concat(problems, ", ")) .. "). ") .. "Set result_failure = return-fail, result_internalfail = return-fail and ") .. "mechanisms_filter = xoauth2 oauthbearer in that passdb block"
end
--- Runs `doveconf -n`. Returns its output, or undefined and the problem.
function ____exports.runDoveconf()
    for ____, command in ipairs({"doveconf -n 2>&1", "/usr/bin/doveconf -n 2>&1"}) do
        do
            local handle = io.popen(command, "r")
            if handle == nil then
                goto __continue25
            end
            local output = handle:read("a") or ""
            local succeeded = handle.close(handle)
            if succeeded == true then
                return output
            end
        end
        ::__continue25::
    end
    return nil, "doveconf -n could not be run"
end
--- Returns the path of this script, as Dovecot's lua_file names it.
function ____exports.scriptPath()
    local ____opt_1 = debug.getinfo(1, "S")
    local source = ____opt_1 and ____opt_1.source or ""
    return string.sub(source, 1, 1) == "@" and string.sub(source, 2) or source
end
return ____exports
 end,
["token-cache"] = function(...) 
local ____lualib = require("lualib_bundle")
local __TS__Class = ____lualib.__TS__Class
local ____exports = {}
____exports.TokenCache = __TS__Class()
local TokenCache = ____exports.TokenCache
TokenCache.name = "TokenCache"
function TokenCache.prototype.____constructor(self, capacity)
    self.young = {}
    self.old = {}
    self.youngCount = 0
    self.generationSize = math.max(
        1,
        math.floor(capacity / 2)
    )
end
function TokenCache.prototype.get(self, key, now)
    local entry = self.young[key]
    if entry == nil then
        entry = self.old[key]
        if entry == nil then
            return nil
        end
        self.old[key] = nil
        if entry.expires > now then
            self:insert(key, entry)
        end
    end
    if entry.expires <= now then
        self.young[key] = nil
        return nil
    end
    return entry
end
function TokenCache.prototype.set(self, key, entry)
    if self.young[key] ~= nil then
        self.young[key] = entry
        return
    end
    self.old[key] = nil
    self:insert(key, entry)
end
function TokenCache.prototype.insert(self, key, entry)
    if self.youngCount >= self.generationSize then
        self.old = self.young
        self.young = {}
        self.youngCount = 0
    end
    self.young[key] = entry
    self.youngCount = self.youngCount + 1
end
return ____exports
 end,
["token-digest"] = function(...) 
local ____exports = {}
local rotateLeft, mixBlock, avalanche, hashLane, PRIME_1, PRIME_2, PRIME_3
function rotateLeft(value, bits)
    return value << bits | value >> 64 - bits
end
function mixBlock(accumulator, block)
    return rotateLeft(accumulator + block * PRIME_2, 31) * PRIME_1
end
function avalanche(value)
    local hash = value
    hash = (hash ~ hash >> 33) * PRIME_2
    hash = (hash ~ hash >> 29) * PRIME_3
    return hash ~ hash >> 32
end
function hashLane(text, seed)
    local accumulator = seed + #text * PRIME_3
    local blocks = math.floor(#text / 8)
    do
        local index = 0
        while index < blocks do
            accumulator = mixBlock(accumulator, (string.unpack("<i8", text, index * 8 + 1)))
            index = index + 1
        end
    end
    local tail = string.sub(text, blocks * 8 + 1) .. string.rep(
        string.char(0),
        8
    )
    accumulator = mixBlock(accumulator, (string.unpack("<i8", tail)))
    return avalanche(accumulator)
end
PRIME_1 = 2654435761 << 32 | 2246822535
PRIME_2 = 3266489917 << 32 | 668265295
PRIME_3 = 374761393 << 32 | 2654435833
--- Reads 16 random bytes for the seed, from /dev/urandom where it exists.
function ____exports.randomSeed()
    local file = io.open("/dev/urandom", "rb")
    local bytes = file and file:read(16)
    if file ~= nil then
        file:close()
    end
    if bytes ~= nil and #bytes == 16 then
        local low, high = string.unpack("<i8i8", bytes)
        return {low, high}
    end
    local fallback = (((((tostring(os.time()) .. " ") .. tostring(os.clock())) .. " ") .. tostring({})) .. " ") .. tostring(math.random(0, 2147483647))
    return {
        hashLane(fallback, PRIME_3),
        hashLane(fallback, PRIME_1)
    }
end
--- Returns a 16-byte digest of `token` under the worker's seed.
function ____exports.tokenDigest(token, seed)
    return string.pack(
        "<i8i8",
        hashLane(token, seed[1]),
        hashLane(token, seed[2])
    )
end
return ____exports
 end,
["passdb"] = function(...) 
local ____exports = {}
local checkToken, checkTokenCached, introspectionEndpoint, askEndpoint, mergeClaims, checkIdentity, checkAccount
local ____claims = require("claims")
local loggableClaim = ____claims.loggableClaim
local lookupClaim = ____claims.lookupClaim
local ____identity = require("identity")
local expandUsernameFormat = ____identity.expandUsernameFormat
local normalizeName = ____identity.normalizeName
local readIdentityClaim = ____identity.readIdentityClaim
local ____pass_2Dattrs = require("pass-attrs")
local expandPassAttributes = ____pass_2Dattrs.expandPassAttributes
local ____policy = require("policy")
local checkPolicy = ____policy.checkPolicy
local readExpiry = ____policy.readExpiry
local ____token_2Ddigest = require("token-digest")
local tokenDigest = ____token_2Ddigest.tokenDigest
local ____url = require("url")
local appendToUrl = ____url.appendToUrl
local ____validation = require("validation")
local queryIntrospection = ____validation.queryIntrospection
local queryTokenUrl = ____validation.queryTokenUrl
local queryUserinfo = ____validation.queryUserinfo
local ____verdict = require("verdict")
local refuse = ____verdict.refuse
function checkToken(bridge, user, token, log)
    local validated = ____exports.validateToken(bridge, token, log)
    if not validated.ok then
        return validated
    end
    local claims = validated.claims
    local policyRefusal = checkPolicy(
        bridge.settings,
        claims,
        bridge:now()
    )
    if policyRefusal ~= nil then
        return policyRefusal
    end
    local binding = checkIdentity(bridge.settings, claims, user, log)
    if binding ~= nil then
        return binding
    end
    local expiry = readExpiry(claims)
    local ____expandPassAttributes_result_1 = expandPassAttributes(bridge.settings.pass_attrs, claims)
    local ____temp_0
    if expiry == false then
        ____temp_0 = nil
    else
        ____temp_0 = expiry
    end
    return {ok = true, fields = ____expandPassAttributes_result_1, expires = ____temp_0}
end
function checkTokenCached(bridge, user, token, log)
    local cache = bridge.cache
    local settings = bridge.settings
    local key = (normalizeName(user) .. "\0") .. tokenDigest(token, bridge.digestSeed)
    local now = bridge:now()
    local cached = cache:get(key, now)
    if cached ~= nil then
        log:debug(("Token cache hit (" .. (cached.ok and "accepted" or "refused")) .. ")")
        if cached.ok then
            return {ok = true, fields = cached.fields or ({})}
        end
        return refuse(
            "PASSWORD_MISMATCH",
            tostring(cached.reason) .. " (cached)"
        )
    end
    local result = checkToken(bridge, user, token, log)
    if result.ok then
        local expires = math.min(now + settings.cache_ttl_secs, result.expires or math.huge)
        if expires > now then
            cache:set(key, {ok = true, expires = expires, fields = result.fields})
        end
    elseif result.result == "PASSWORD_MISMATCH" and settings.cache_negative_ttl_secs > 0 then
        cache:set(key, {ok = false, expires = now + settings.cache_negative_ttl_secs, reason = result.reason})
    end
    return result
end
--- Validates the token with the endpoints the settings name: tokeninfo_url first when set, then the
-- introspection endpoint, unless tokeninfo already returned the identity claim and
-- force_introspection is off. Claims of a later response override those of an earlier one.
function ____exports.validateToken(bridge, token, log)
    local settings = bridge.settings
    local tokeninfo = nil
    if settings.tokeninfo_url ~= nil then
        local result = queryTokenUrl(
            settings,
            settings.tokeninfo_url,
            token,
            "Tokeninfo",
            bridge.transport,
            log
        )
        if not result.ok then
            return result
        end
        tokeninfo = result
        local hasIdentity = lookupClaim(result.claims, settings.username_attribute) ~= nil
        local canIntrospect = settings.introspection_url ~= nil or bridge.discovery ~= nil
        if hasIdentity and not settings.force_introspection or not canIntrospect then
            return result
        end
    end
    local endpoint = introspectionEndpoint(bridge, log)
    if not endpoint.ok then
        return endpoint
    end
    local result = askEndpoint(bridge, endpoint.url, token, log)
    if not result.ok or tokeninfo == nil then
        return result
    end
    return mergeClaims(tokeninfo, result)
end
function introspectionEndpoint(bridge, log)
    local settings = bridge.settings
    if settings.introspection_url ~= nil then
        return {ok = true, url = settings.introspection_url}
    end
    if bridge.discovery == nil then
        return refuse("INTERNAL_FAILURE", "No introspection_url or openid_configuration_url is set")
    end
    local endpoints = bridge.discovery:resolve(
        bridge.transport,
        bridge:now(),
        log
    )
    if not endpoints.ok then
        return endpoints
    end
    local wanted = settings.introspection_mode == "post" and "introspection_endpoint" or "userinfo_endpoint"
    local ____temp_2
    if settings.introspection_mode == "post" then
        ____temp_2 = endpoints.introspection
    else
        ____temp_2 = endpoints.userinfo
    end
    local url = ____temp_2
    if url == nil then
        return refuse("INTERNAL_FAILURE", "OpenID discovery document has no " .. wanted)
    end
    if settings.introspection_mode == "get" then
        local separator = (string.find(url.text, "?", 1, true)) == nil and "?" or "&"
        return {
            ok = true,
            url = appendToUrl(url, separator .. "access_token=")
        }
    end
    return {ok = true, url = url}
end
function askEndpoint(bridge, url, token, log)
    local settings = bridge.settings
    repeat
        local ____switch29 = settings.introspection_mode
        local ____cond29 = ____switch29 == "auth"
        if ____cond29 then
            return queryUserinfo(
                settings,
                url,
                token,
                bridge.transport,
                log
            )
        end
        ____cond29 = ____cond29 or ____switch29 == "get"
        if ____cond29 then
            return queryTokenUrl(
                settings,
                url,
                token,
                "Userinfo",
                bridge.transport,
                log
            )
        end
        ____cond29 = ____cond29 or ____switch29 == "post"
        if ____cond29 then
            return queryIntrospection(
                settings,
                url,
                token,
                bridge.transport,
                log
            )
        end
    until true
end
function mergeClaims(first, second)
    local claims = {}
    local nullClaims = {}
    for ____, source in ipairs({first, second}) do
        for name, value in pairs(source.claims) do
            claims[name] = value
            nullClaims[name] = nil
        end
        for name in pairs(source.nullClaims) do
            claims[name] = nil
            nullClaims[name] = true
        end
    end
    return {ok = true, claims = claims, nullClaims = nullClaims}
end
function checkIdentity(settings, claims, user, log)
    local attribute = settings.username_attribute
    local claim = readIdentityClaim(claims, attribute)
    if not claim.ok then
        return refuse("INTERNAL_FAILURE", "Identity provider response unusable: " .. claim.reason)
    end
    local formatted, problem = expandUsernameFormat(settings.username_format, claim.name)
    if formatted == nil then
        return refuse("INTERNAL_FAILURE", "username_format " .. problem)
    end
    if normalizeName(formatted) ~= normalizeName(user) then
        return refuse(
            "PASSWORD_MISMATCH",
            ((("Token belongs to " .. loggableClaim(formatted)) .. " (claim ") .. attribute) .. "), not to the login name"
        )
    end
    log:debug(("Identity claim " .. attribute) .. " matches the login name")
    return nil
end
function checkAccount(accounts, user, log)
    local found = accounts:lookup(user, log)
    repeat
        local ____switch40 = found.status
        local ____cond40 = ____switch40 == "unavailable"
        if ____cond40 then
            return refuse("INTERNAL_FAILURE", "Account list unavailable: " .. found.reason)
        end
        ____cond40 = ____cond40 or ____switch40 == "missing"
        if ____cond40 then
            return refuse("USER_UNKNOWN", "No mailbox for the login name in " .. accounts.location)
        end
        ____cond40 = ____cond40 or ____switch40 == "disabled"
        if ____cond40 then
            return refuse("USER_DISABLED", "Mailbox is disabled in " .. accounts.location)
        end
        ____cond40 = ____cond40 or ____switch40 == "found"
        if ____cond40 then
            log:debug("Mailbox found in " .. accounts.location)
            return nil
        end
    until true
end
local B64TOKEN_PATTERN = "^[%w%-%._~%+/]+=*$"
--- Decides one login attempt. Expected denials are returned; only broken invariants raise.
function ____exports.verifyLogin(bridge, user, token, log)
    if (string.match(token, B64TOKEN_PATTERN)) == nil then
        return refuse(
            "PASSWORD_MISMATCH",
            ("Token is not a valid bearer token (" .. tostring(#token)) .. " bytes)"
        )
    end
    local accepted = bridge.cache == nil and checkToken(bridge, user, token, log) or checkTokenCached(bridge, user, token, log)
    if not accepted.ok then
        return accepted
    end
    local account = checkAccount(bridge.accounts, user, log)
    if account ~= nil then
        return account
    end
    return {ok = true, fields = accepted.fields}
end
return ____exports
 end,
["main"] = function(...) 
local ____lualib = require("lualib_bundle")
local __TS__New = ____lualib.__TS__New
local ____exports = {}
local requireFailClosedConfig, decision, resultCode, requestLogger, formatError, bridge
local ____accounts = require("accounts")
local createAccountSource = ____accounts.createAccountSource
local ____config = require("config")
local DEFAULT_SETTINGS_PATH = ____config.DEFAULT_SETTINGS_PATH
local loadSettings = ____config.loadSettings
local parseSettings = ____config.parseSettings
local SETTINGS_PATH_VARIABLE = ____config.SETTINGS_PATH_VARIABLE
local ____dovecot24 = require("dovecot24")
local checkFailClosed = ____dovecot24.checkFailClosed
local runDoveconf = ____dovecot24.runDoveconf
local scriptPath = ____dovecot24.scriptPath
local settingsTextFromTable = ____dovecot24.settingsTextFromTable
local ____discovery = require("discovery")
local Discovery = ____discovery.Discovery
local ____token_2Dcache = require("token-cache")
local TokenCache = ____token_2Dcache.TokenCache
local ____token_2Ddigest = require("token-digest")
local randomSeed = ____token_2Ddigest.randomSeed
local ____http = require("http")
local closeIdleConnections = ____http.closeIdleConnections
local httpRequest = ____http.httpRequest
local ____passdb = require("passdb")
local verifyLogin = ____passdb.verifyLogin
function requireFailClosedConfig()
    local output, problem = runDoveconf()
    if output == nil then
        error(("oauth2-bridge: cannot check the passdb configuration: " .. problem) .. ". Make doveconf available in PATH", 0)
    end
    local unsafe = checkFailClosed(
        output,
        scriptPath()
    )
    if unsafe ~= nil then
        error("oauth2-bridge: " .. unsafe, 0)
    end
end
--- Verifies one XOAUTH2 or OAUTHBEARER token. Any stray error becomes INTERNAL_FAILURE, never OK.
function ____exports.authPasswordVerify(req, token)
    local log = requestLogger(req)
    local current = bridge
    if current == nil then
        return decision(log, "INTERNAL_FAILURE", "oauth2-bridge is not initialised: script_init did not run")
    end
    local completed, verdictOrError = pcall(
        verifyLogin,
        current,
        req.user,
        token,
        log
    )
    if not completed then
        return decision(
            log,
            "INTERNAL_FAILURE",
            "oauth2-bridge internal error: " .. formatError(verdictOrError)
        )
    end
    local verdict = verdictOrError
    if verdict.ok then
        log:info("Token accepted")
        return dovecot.auth.PASSDB_RESULT_OK, verdict.fields
    end
    return decision(log, verdict.result, verdict.reason)
end
function decision(log, result, reason)
    if result ~= "INTERNAL_FAILURE" then
        log:info(reason)
    end
    return resultCode(result), reason
end
function resultCode(result)
    repeat
        local ____switch22 = result
        local ____cond22 = ____switch22 == "OK"
        if ____cond22 then
            return dovecot.auth.PASSDB_RESULT_OK
        end
        ____cond22 = ____cond22 or ____switch22 == "PASSWORD_MISMATCH"
        if ____cond22 then
            return dovecot.auth.PASSDB_RESULT_PASSWORD_MISMATCH
        end
        ____cond22 = ____cond22 or ____switch22 == "USER_UNKNOWN"
        if ____cond22 then
            return dovecot.auth.PASSDB_RESULT_USER_UNKNOWN
        end
        ____cond22 = ____cond22 or ____switch22 == "USER_DISABLED"
        if ____cond22 then
            return dovecot.auth.PASSDB_RESULT_USER_DISABLED
        end
        ____cond22 = ____cond22 or ____switch22 == "INTERNAL_FAILURE"
        if ____cond22 then
            return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE
        end
    until true
end
function requestLogger(req)
    return {
        debug = function(____, message) return req:log_debug(message) end,
        info = function(____, message) return req:log_info(message) end,
        warning = function(____, message) return req:log_warning(message) end,
        error = function(____, message) return req:log_error(message) end
    }
end
function formatError(value)
    if type(value) == "table" and value ~= nil and value.message ~= nil then
        return tostring(value.message)
    end
    return tostring(value)
end
bridge = nil
--- Path of the settings file: $OAUTH2_BRIDGE_CONFIG, or the default.
function ____exports.settingsPath()
    local fromEnvironment = os.getenv(SETTINGS_PATH_VARIABLE)
    return fromEnvironment ~= nil and fromEnvironment ~= "" and fromEnvironment or DEFAULT_SETTINGS_PATH
end
--- Loads the settings; a mistake raises an error that names the key, which stops Dovecot's auth
-- process. Dovecot 2.3 passes no argument. Dovecot 2.4 passes the lua_settings table, which is
-- used when it holds any setting, else the settings file is read as on 2.3; and on 2.4 the
-- passdb block must be fail-closed.
function ____exports.scriptInit(luaSettings)
    if luaSettings ~= nil then
        requireFailClosedConfig()
    end
    local useTable = luaSettings ~= nil and (next(luaSettings)) ~= nil
    local loaded, settingsOrError = pcall(function() return useTable and parseSettings(
        settingsTextFromTable(luaSettings),
        "lua_settings"
    ) or loadSettings(____exports.settingsPath()) end)
    if not loaded then
        error(
            "oauth2-bridge: " .. formatError(settingsOrError),
            0
        )
    end
    local settings = settingsOrError
    local accounts = createAccountSource(settings)
    local problem = accounts:check()
    if problem ~= nil then
        error(((("oauth2-bridge: account_source = " .. settings.account_source) .. ": ") .. problem) .. ". Check the account settings", 0)
    end
    local ____temp_0
    if settings.openid_configuration_url == nil then
        ____temp_0 = nil
    else
        ____temp_0 = __TS__New(Discovery, settings, settings.openid_configuration_url)
    end
    local discovery = ____temp_0
    local cache = settings.cache_ttl_secs > 0 and __TS__New(TokenCache, 2 * settings.cache_size) or nil
    bridge = {
        settings = settings,
        accounts = accounts,
        transport = httpRequest,
        discovery = discovery,
        cache = cache,
        digestSeed = randomSeed(),
        now = function() return os.time() end
    }
    return 0
end
--- Dovecot 2.4's hook after its oauth2 block accepted an XOAUTH2 or OAUTHBEARER token: applies
-- the bridge's own rules to the same token. Never returns NEXT, which Dovecot would count as
-- success.
function ____exports.authPassdbLookup(req)
    local ____opt_1 = req.passdb
    local token = ____opt_1 and ____opt_1.token
    if type(token) ~= "string" or token == "" then
        local log = requestLogger(req)
        return decision(log, "INTERNAL_FAILURE", "oauth2-bridge got no token in req.passdb.token. Dovecot 2.4 releases after 2.4.1 need " .. "oauth2 { fields { token = %{oauth2:access_token} } } or similar to export it")
    end
    return ____exports.authPasswordVerify(req, token)
end
function ____exports.scriptDeinit()
    bridge = nil
    closeIdleConnections()
end
_G.script_init = ____exports.scriptInit
_G.script_deinit = ____exports.scriptDeinit
_G.auth_password_verify = ____exports.authPasswordVerify
_G.auth_passdb_lookup = ____exports.authPassdbLookup
____exports.accounts = require("account-file")
____exports.ldapAccounts = require("ldap-accounts")
____exports.nameSet = require("name-set")
____exports.dovecot24 = require("dovecot24")
____exports.config = require("config")
____exports.identity = require("identity")
____exports.json = require("json")
____exports.passdb = require("passdb")
____exports.policy = require("policy")
____exports.claims = require("claims")
____exports.discovery = require("discovery")
____exports.passAttributes = require("pass-attrs")
____exports.validation = require("validation")
____exports.http = require("http")
____exports.connection = require("connection")
____exports.url = require("url")
____exports.tokenDigest = require("token-digest")
____exports.tokenCache = require("token-cache")
return ____exports
 end,
}
local ____entry = require("main", ...)
return ____entry
