
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
local function __TS__Class(self)
    local c = {prototype = {}}
    c.prototype.__index = c.prototype
    c.prototype.constructor = c
    return c
end

local function __TS__StringStartsWith(self, searchString, position)
    if position == nil or position < 0 then
        position = 0
    end
    return string.sub(self, position + 1, #searchString + position) == searchString
end

local function __TS__StringIncludes(self, searchString, position)
    if not position then
        position = 1
    else
        position = position + 1
    end
    local index = string.find(self, searchString, position, true)
    return index ~= nil
end

local function __TS__New(target, ...)
    local instance = setmetatable({}, target.prototype)
    instance:____constructor(...)
    return instance
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

local function __TS__ObjectEntries(obj)
    local result = {}
    local len = 0
    for key in pairs(obj) do
        len = len + 1
        result[len] = {key, obj[key]}
    end
    return result
end

local function __TS__ArraySome(self, callbackfn, thisArg)
    for i = 1, #self do
        if callbackfn(thisArg, self[i], i - 1, self) then
            return true
        end
    end
    return false
end

local function __TS__ObjectAssign(target, ...)
    local sources = {...}
    for i = 1, #sources do
        local source = sources[i]
        if type(source) == "table" then
            for key in pairs(source) do
                target[key] = source[key]
            end
        end
    end
    return target
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

return {
  __TS__Class = __TS__Class,
  __TS__StringStartsWith = __TS__StringStartsWith,
  __TS__StringIncludes = __TS__StringIncludes,
  Error = Error,
  RangeError = RangeError,
  ReferenceError = ReferenceError,
  SyntaxError = SyntaxError,
  TypeError = TypeError,
  URIError = URIError,
  __TS__ClassExtends = __TS__ClassExtends,
  __TS__New = __TS__New,
  Map = Map,
  __TS__Iterator = __TS__Iterator,
  __TS__ArrayIncludes = __TS__ArrayIncludes,
  __TS__ObjectKeys = __TS__ObjectKeys,
  __TS__ArraySort = __TS__ArraySort,
  __TS__ObjectEntries = __TS__ObjectEntries,
  __TS__ArraySome = __TS__ArraySome,
  __TS__ObjectAssign = __TS__ObjectAssign,
  __TS__ArraySlice = __TS__ArraySlice
}
 end,
["identity"] = function(...) 
local ____exports = {}
local findLastAt
function findLastAt(value)
    local position = string.find(value, "@[^@]*$")
    return position
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
--- Lowers ASCII letters only. The explicit [A-Z] class, unlike %u, does not depend on the locale.
function ____exports.normalizeName(name)
    return (string.gsub(
        name,
        "[A-Z]",
        function(letter) return string.char(string.byte(letter) + 32) end
    ))
end
--- Expands a Dovecot-style username_format (%u, %n, %d, with an optional L modifier that lowers
-- the value, and %% for a percent sign) for one claim value. Returns the result, or undefined
-- and the problem.
function ____exports.expandUsernameFormat(format, value)
    local at = findLastAt(value)
    local parts = {
        u = value,
        n = at == nil and value or string.sub(value, 1, at - 1),
        d = at == nil and "" or string.sub(value, at + 1)
    }
    local problem = nil
    local sawVariable = false
    local expanded = string.gsub(
        format,
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
            return modifier == "L" and ____exports.normalizeName(part) or part
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
--- Reads the identity claim from a decoded userinfo object. Only a non-empty string counts:
-- JSON null, numbers, booleans and tables are rejected by type, not by Lua truthiness.
function ____exports.readIdentityClaim(claims, attribute)
    local value = claims[attribute]
    if value == nil then
        return {ok = false, reason = ("claim " .. attribute) .. " is missing"}
    end
    if type(value) ~= "string" then
        return {
            ok = false,
            reason = ((("claim " .. attribute) .. " is not a string (") .. ____exports.jsonTypeName(value)) .. ")"
        }
    end
    if value == "" then
        return {ok = false, reason = ("claim " .. attribute) .. " is empty"}
    end
    return {ok = true, name = value}
end
return ____exports
 end,
["accounts"] = function(...) 
local ____lualib = require("lualib_bundle")
local __TS__Class = ____lualib.__TS__Class
local __TS__StringStartsWith = ____lualib.__TS__StringStartsWith
local ____exports = {}
local fingerprintOf, sameFingerprint
local lfs = require("lfs")
local ____identity = require("identity")
local normalizeName = ____identity.normalizeName
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
--- docker-mailserver's postfix-accounts.cf: one `address|password-hash` line per mailbox, with
-- optional further `|` fields, `#` comments and blank lines. The file is read again only when
-- its inode, size or times change. Aliases live in postfix-virtual.cf and are not accounts.
____exports.PostfixAccountsFile = __TS__Class()
local PostfixAccountsFile = ____exports.PostfixAccountsFile
PostfixAccountsFile.name = "PostfixAccountsFile"
function PostfixAccountsFile.prototype.____constructor(self, path)
    self.path = path
    self.names = {}
    self.count = 0
    self.racy = true
end
function PostfixAccountsFile.prototype.lookup(self, name, onReload)
    local reloadProblem = self:refresh(onReload)
    if reloadProblem ~= nil then
        return {status = "unavailable", reason = reloadProblem}
    end
    return self.names[normalizeName(name)] ~= nil and ({status = "found"}) or ({status = "missing"})
end
function PostfixAccountsFile.prototype.refresh(self, onReload)
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
    local previousCount = self.count
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
function PostfixAccountsFile.prototype.load(self, text)
    local names = {}
    local malformedLines = {}
    local accounts = 0
    local lineNumber = 0
    for line in string.gmatch(text .. "\n", "([^\n]*)\n") do
        do
            lineNumber = lineNumber + 1
            local trimmed = (string.match(line, "^%s*(.-)%s*$")) or ""
            if trimmed == "" or __TS__StringStartsWith(trimmed, "#") then
                goto __continue12
            end
            local address = string.match(trimmed, "^([^|%s]+@[^|%s]+)|")
            if address == nil then
                malformedLines[#malformedLines + 1] = lineNumber
                goto __continue12
            end
            names[normalizeName(address)] = true
            accounts = accounts + 1
        end
        ::__continue12::
    end
    self.names = names
    self.count = accounts
    return {accounts = accounts, malformedLines = malformedLines}
end
return ____exports
 end,
["url"] = function(...) 
local ____lualib = require("lualib_bundle")
local __TS__StringIncludes = ____lualib.__TS__StringIncludes
local ____exports = {}
local socketUrl = require("socket.url")
--- Parses an absolute http(s) URL. Returns the URL, or undefined and the problem.
function ____exports.parseUrl(text)
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
    if parts.userinfo ~= nil then
        return nil, "credentials in the URL are not supported"
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
    return {
        text = text,
        scheme = scheme,
        host = string.lower(parts.host),
        port = port
    }
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
local __TS__Iterator = ____lualib.__TS__Iterator
local __TS__StringStartsWith = ____lualib.__TS__StringStartsWith
local __TS__ArrayIncludes = ____lualib.__TS__ArrayIncludes
local __TS__ObjectKeys = ____lualib.__TS__ObjectKeys
local __TS__ArraySort = ____lualib.__TS__ArraySort
local __TS__ObjectEntries = ____lualib.__TS__ObjectEntries
local ____exports = {}
local parseLines, checkKnownKey, convertValue, trim, unquote, pairsOf, DOVECOT_ONLY_KEYS
local lfs = require("lfs")
local ____identity = require("identity")
local expandUsernameFormat = ____identity.expandUsernameFormat
local ____url = require("url")
local parseUrl = ____url.parseUrl
--- Parses and validates settings text. `origin` names the file in error messages.
function ____exports.parseSettings(text, origin)
    local raw = parseLines(text, origin)
    for ____, ____value in ipairs(pairsOf(____exports.KEYS)) do
        local key = ____value[1]
        local spec = ____value[2]
        if raw:get(key) == nil and spec.defaultValue ~= nil then
            raw:set(key, spec.defaultValue)
        end
    end
    if not raw:has("introspection_url") then
        error(
            __TS__New(____exports.SettingsError, (origin .. ": introspection_url is missing. Set it to the identity provider's userinfo URL, ") .. "e.g. introspection_url = https://idp.example.com/application/o/userinfo/"),
            0
        )
    end
    local values = {}
    for ____, ____value in __TS__Iterator(raw) do
        local key = ____value[1]
        local value = ____value[2]
        values[key] = convertValue(key, ____exports.KEYS[key], value, origin)
    end
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
                goto __continue12
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
        ::__continue12::
    end
    return raw
end
function checkKnownKey(key, origin, lineNumber)
    if ____exports.KEYS[key] ~= nil then
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
        __TS__ArraySort(__TS__ObjectKeys(____exports.KEYS)),
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
        local shown = spec.secret == true and "(hidden)" or ("\"" .. value) .. "\""
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
        local ____switch23 = spec.kind
        local ____cond23 = ____switch23 == "url"
        if ____cond23 then
            do
                local url, problem = parseUrl(value)
                return url or fail(("is not a valid URL (" .. problem) .. ")", "Use an absolute http:// or https:// URL")
            end
        end
        ____cond23 = ____cond23 or ____switch23 == "boolean"
        if ____cond23 then
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
        ____cond23 = ____cond23 or ____switch23 == "integer"
        if ____cond23 then
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
        ____cond23 = ____cond23 or ____switch23 == "format"
        if ____cond23 then
            do
                local ____, problem = expandUsernameFormat(value, "user@example.com")
                return problem == nil and value or fail(problem, "Use %u, %n or %d, optionally as %Lu, %Ln or %Ld")
            end
        end
        ____cond23 = ____cond23 or ____switch23 == "path"
        if ____cond23 then
            do
                local file, openError = io.open(value, "r")
                if file == nil then
                    return fail(("cannot be read (" .. openError) .. ")", "Check the path and its permissions for the auth worker")
                end
                file:close()
                local attributes = lfs.attributes(value)
                if attributes == nil or attributes.mode ~= "file" then
                    return fail("is not a regular file", "Check the path and its permissions for the auth worker")
                end
                return value
            end
        end
        ____cond23 = ____cond23 or ____switch23 == "string"
        if ____cond23 then
            return value
        end
    until true
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
function pairsOf(____table)
    return __TS__ObjectEntries(____table)
end
____exports.DEFAULT_SETTINGS_PATH = "/etc/dovecot/oauth2-bridge.conf"
____exports.SETTINGS_PATH_VARIABLE = "OAUTH2_BRIDGE_CONFIG"
--- Every accepted key, with its type, default and meaning. The README lists the same table.
____exports.KEYS = {
    introspection_url = {kind = "url", description = "URL of the identity provider's OIDC userinfo endpoint"},
    introspection_mode = {kind = "string", defaultValue = "auth", choices = {"auth"}, description = "how the token is sent: auth = GET with an Authorization: Bearer header"},
    username_attribute = {kind = "string", defaultValue = "email", description = "claim in the userinfo response that contains the login name"},
    username_format = {kind = "format", defaultValue = "%Lu", description = "how the claim is turned into a login name: %u whole value, %n local part, %d domain"},
    tls_ca_cert_file = {kind = "path", description = "PEM file with the CA certificates that sign the identity provider's certificate"},
    tls_allow_invalid_cert = {kind = "boolean", defaultValue = "no", description = "skip certificate and host name verification (testing only)"},
    timeout_msecs = {
        kind = "integer",
        defaultValue = "5000",
        min = 1,
        max = 600000,
        description = "time limit for one request to the identity provider, in milliseconds"
    },
    max_response_bytes = {
        kind = "integer",
        defaultValue = "65536",
        min = 1024,
        max = 16777216,
        description = "largest response body accepted from the identity provider, in bytes"
    },
    account_source = {kind = "string", defaultValue = "postfix-accounts", choices = {"postfix-accounts"}, description = "where the list of mailboxes comes from"},
    account_file = {kind = "path", defaultValue = "/tmp/docker-mailserver/postfix-accounts.cf", description = "docker-mailserver's account file, one address|hash line per mailbox"},
    client_id = {kind = "string", description = "OAuth2 client id, kept for introspection modes that authenticate the client"},
    client_secret = {kind = "string", secret = true, description = "OAuth2 client secret, kept for introspection modes that authenticate the client"}
}
DOVECOT_ONLY_KEYS = {
    "tokeninfo_url",
    "grant_url",
    "client_id_attribute",
    "scope",
    "force_introspection",
    "active_attribute",
    "active_value",
    "issuers",
    "openid_configuration_url",
    "local_validation_key_dict",
    "pass_attrs",
    "send_auth_headers",
    "use_grant_password",
    "rawlog_dir",
    "tls_ca_cert_dir",
    "tls_cert_file",
    "tls_key_file",
    "tls_cipher_suite",
    "max_idle_time_msecs",
    "max_parallel_connections",
    "max_pipelined_requests",
    "user_agent",
    "debug"
}
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
local isIpAddress, dnsNameMatches, SUBJECT_ALT_NAME_OID, DeadlineSocket
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
--- Returns a `create` function for socket.http.request that builds such a socket.
function ____exports.connectionFactory(options)
    return function()
        local tcp, ____error = socket.tcp()
        if tcp == nil then
            return nil, ____error
        end
        return __TS__New(DeadlineSocket, tcp, options)
    end
end
DeadlineSocket = __TS__Class()
DeadlineSocket.name = "DeadlineSocket"
function DeadlineSocket.prototype.____constructor(self, tcp, options)
    self.options = options
    self.sock = tcp
end
function DeadlineSocket.prototype.connect(self, host, port)
    if not self:applyDeadline() then
        return nil, "timeout"
    end
    local connected, connectError = self.sock:connect(host, port)
    if connected == nil then
        return nil, connectError
    end
    if not self.options.tls then
        return 1
    end
    return self:startTls()
end
function DeadlineSocket.prototype.settimeout(self)
    return 1
end
function DeadlineSocket.prototype.send(self, data, i, j)
    if not self:applyDeadline() then
        return nil, "timeout", 0
    end
    return self.sock:send(data, i, j)
end
function DeadlineSocket.prototype.receive(self, pattern, prefix)
    if not self:applyDeadline() then
        return nil, "timeout", nil
    end
    return self.sock:receive(pattern, prefix)
end
function DeadlineSocket.prototype.close(self)
    self.sock:close()
end
function DeadlineSocket.prototype.getfd(self)
    return self.sock:getfd()
end
function DeadlineSocket.prototype.dirty(self)
    return self.sock:dirty()
end
function DeadlineSocket.prototype.setoption(self, option, value)
    return self.sock:setoption(option, value)
end
function DeadlineSocket.prototype.applyDeadline(self)
    local remaining = self.options.deadline - socket.gettime()
    if remaining <= 0 then
        return false
    end
    self.sock:settimeout(remaining)
    return true
end
function DeadlineSocket.prototype.startTls(self)
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
local __TS__ObjectAssign = ____lualib.__TS__ObjectAssign
local ____exports = {}
local socket = require("socket")
local http = require("socket.http")
local ____connection = require("connection")
local connectionFactory = ____connection.connectionFactory
local USER_AGENT = "dovecot-oauth2-bridge"
--- Sends a GET request. Transport failures are returned, never raised.
function ____exports.httpGet(url, headers, options)
    local chunks = {}
    local received = 0
    local tooLarge = false
    local function sink(chunk)
        if chunk == nil then
            return 1
        end
        received = received + #chunk
        if received > options.maxResponseBytes then
            tooLarge = true
            return nil, "response too large"
        end
        chunks[#chunks + 1] = chunk
        return 1
    end
    local done, statusOrError, responseHeaders = http.request({
        url = url.text,
        method = "GET",
        headers = __TS__ObjectAssign({}, headers, {["user-agent"] = USER_AGENT}),
        sink = sink,
        redirect = false,
        create = connectionFactory({
            tls = url.scheme == "https",
            host = url.host,
            deadline = socket.gettime() + options.timeoutMsecs / 1000,
            verifyCertificate = not options.allowInvalidCertificate,
            caFile = options.caFile
        })
    })
    if tooLarge then
        return {
            ok = false,
            error = ("response body larger than " .. tostring(options.maxResponseBytes)) .. " bytes"
        }
    end
    if done == nil then
        return {
            ok = false,
            error = tostring(statusOrError)
        }
    end
    return {
        ok = true,
        status = statusOrError,
        headers = responseHeaders,
        body = table.concat(chunks, "")
    }
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
["verdict"] = function(...) 
local ____exports = {}
function ____exports.refuse(result, reason)
    return {ok = false, result = result, reason = reason}
end
return ____exports
 end,
["policy"] = function(...) 
local ____exports = {}
local ____verdict = require("verdict")
local refuse = ____verdict.refuse
--- Checks `active` (RFC 7662) before anything else: when the claim is present, only JSON true
-- means the token is usable, so `"active": null` refuses too.
function ____exports.checkActive(claims, nullClaims)
    local active = claims.active
    if nullClaims.active ~= nil or active ~= nil and active ~= true then
        return refuse("PASSWORD_MISMATCH", "Token is not active")
    end
    return nil
end
--- Checks `exp` when present: a number or a numeric string (as Google's tokeninfo sends it) of
-- seconds since the epoch. An expiry that is neither cannot be trusted.
function ____exports.checkExpiry(claims, now)
    local exp = claims.exp
    if exp == nil then
        return nil
    end
    local ____temp_1
    if type(exp) == "number" then
        ____temp_1 = exp
    else
        local ____temp_0
        if type(exp) == "string" then
            ____temp_0 = tonumber(exp)
        else
            ____temp_0 = nil
        end
        ____temp_1 = ____temp_0
    end
    local seconds = ____temp_1
    if seconds == nil or seconds ~= seconds then
        return refuse("INTERNAL_FAILURE", "Claim exp is not a number")
    end
    if seconds <= now then
        return refuse("PASSWORD_MISMATCH", "Token has expired")
    end
    return nil
end
return ____exports
 end,
["userinfo"] = function(...) 
local ____exports = {}
local ____json = require("json")
local decodeObject = ____json.decodeObject
local ____verdict = require("verdict")
local refuse = ____verdict.refuse
--- Asks the userinfo endpoint about the token. Never logs the token or the response body.
function ____exports.fetchUserinfo(settings, token, httpGet, log)
    local url = settings.introspection_url
    local where = (url.host .. ":") .. tostring(url.port)
    log:debug((("Userinfo request: GET " .. url.scheme) .. "://") .. where)
    local response = httpGet(url, {authorization = "Bearer " .. token, accept = "application/json"}, {timeoutMsecs = settings.timeout_msecs, maxResponseBytes = settings.max_response_bytes, caFile = settings.tls_ca_cert_file, allowInvalidCertificate = settings.tls_allow_invalid_cert})
    if not response.ok then
        return refuse("INTERNAL_FAILURE", ((("Userinfo request failed: " .. response.error) .. " (") .. where) .. ")")
    end
    log:debug(((("Userinfo response: HTTP " .. tostring(response.status)) .. ", ") .. tostring(#response.body)) .. " bytes")
    local status = response.status
    if status == 401 or status == 403 then
        return refuse(
            "PASSWORD_MISMATCH",
            (("Token rejected by the identity provider: HTTP " .. tostring(status)) .. " from ") .. where
        )
    end
    if status >= 300 and status < 400 then
        return refuse(
            "INTERNAL_FAILURE",
            ((("Userinfo request failed: HTTP " .. tostring(status)) .. " redirect from ") .. where) .. " not followed"
        )
    end
    if status ~= 200 then
        return refuse(
            "INTERNAL_FAILURE",
            (("Userinfo request failed: HTTP " .. tostring(status)) .. " from ") .. where
        )
    end
    local decoded = decodeObject(response.body)
    if not decoded.ok then
        return refuse("INTERNAL_FAILURE", ((("Userinfo request failed: " .. decoded.problem) .. " (HTTP 200 from ") .. where) .. ")")
    end
    return {ok = true, claims = decoded.object, nullClaims = decoded.nullMembers}
end
return ____exports
 end,
["passdb"] = function(...) 
local ____lualib = require("lualib_bundle")
local __TS__ArraySlice = ____lualib.__TS__ArraySlice
local ____exports = {}
local checkIdentity, checkAccount
local ____identity = require("identity")
local expandUsernameFormat = ____identity.expandUsernameFormat
local normalizeName = ____identity.normalizeName
local readIdentityClaim = ____identity.readIdentityClaim
local ____policy = require("policy")
local checkActive = ____policy.checkActive
local checkExpiry = ____policy.checkExpiry
local ____userinfo = require("userinfo")
local fetchUserinfo = ____userinfo.fetchUserinfo
local ____verdict = require("verdict")
local refuse = ____verdict.refuse
function checkIdentity(settings, claims, user, log)
    local attribute = settings.username_attribute
    local claim = readIdentityClaim(claims, attribute)
    if not claim.ok then
        return refuse("INTERNAL_FAILURE", "Userinfo response unusable: " .. claim.reason)
    end
    local formatted, problem = expandUsernameFormat(settings.username_format, claim.name)
    if formatted == nil then
        return refuse("INTERNAL_FAILURE", "username_format " .. problem)
    end
    if normalizeName(formatted) ~= normalizeName(user) then
        return refuse("PASSWORD_MISMATCH", ((("Token belongs to " .. formatted) .. " (claim ") .. attribute) .. "), not to the login name")
    end
    log:debug(("Identity claim " .. attribute) .. " matches the login name")
    return nil
end
function checkAccount(accounts, user, log)
    local found = accounts:lookup(
        user,
        function(report)
            log:info(((("Account list loaded from " .. accounts.path) .. ": ") .. tostring(report.accounts)) .. " accounts")
            if #report.malformedLines > 0 then
                local lines = table.concat(
                    __TS__ArraySlice(report.malformedLines, 0, 10),
                    ", "
                )
                log:warning((("Account list " .. accounts.path) .. ": skipped malformed lines ") .. lines)
            end
        end
    )
    if found.status == "unavailable" then
        return refuse("INTERNAL_FAILURE", "Account list unavailable: " .. found.reason)
    end
    if found.status == "missing" then
        return refuse("USER_UNKNOWN", "No mailbox for the login name in " .. accounts.path)
    end
    log:debug("Mailbox found in " .. accounts.path)
    return {ok = true}
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
    local userinfo = fetchUserinfo(bridge.settings, token, bridge.httpGet, log)
    if not userinfo.ok then
        return userinfo
    end
    local claims = userinfo.claims
    local policyRefusal = checkActive(claims, userinfo.nullClaims) or checkExpiry(
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
    return checkAccount(bridge.accounts, user, log)
end
return ____exports
 end,
["main"] = function(...) 
local ____lualib = require("lualib_bundle")
local __TS__New = ____lualib.__TS__New
local ____exports = {}
local decision, resultCode, requestLogger, formatError
local ____accounts = require("accounts")
local PostfixAccountsFile = ____accounts.PostfixAccountsFile
local ____config = require("config")
local DEFAULT_SETTINGS_PATH = ____config.DEFAULT_SETTINGS_PATH
local loadSettings = ____config.loadSettings
local SETTINGS_PATH_VARIABLE = ____config.SETTINGS_PATH_VARIABLE
local ____http = require("http")
local httpGet = ____http.httpGet
local ____passdb = require("passdb")
local verifyLogin = ____passdb.verifyLogin
function decision(log, result, reason)
    if result == "OK" then
        log:info(reason)
        return dovecot.auth.PASSDB_RESULT_OK, {}
    end
    if result ~= "INTERNAL_FAILURE" then
        log:info(reason)
    end
    return resultCode(result), reason
end
function resultCode(result)
    repeat
        local ____switch16 = result
        local ____cond16 = ____switch16 == "OK"
        if ____cond16 then
            return dovecot.auth.PASSDB_RESULT_OK
        end
        ____cond16 = ____cond16 or ____switch16 == "PASSWORD_MISMATCH"
        if ____cond16 then
            return dovecot.auth.PASSDB_RESULT_PASSWORD_MISMATCH
        end
        ____cond16 = ____cond16 or ____switch16 == "USER_UNKNOWN"
        if ____cond16 then
            return dovecot.auth.PASSDB_RESULT_USER_UNKNOWN
        end
        ____cond16 = ____cond16 or ____switch16 == "USER_DISABLED"
        if ____cond16 then
            return dovecot.auth.PASSDB_RESULT_USER_DISABLED
        end
        ____cond16 = ____cond16 or ____switch16 == "INTERNAL_FAILURE"
        if ____cond16 then
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
local bridge = nil
--- Path of the settings file: $OAUTH2_BRIDGE_CONFIG, or the default.
function ____exports.settingsPath()
    local fromEnvironment = os.getenv(SETTINGS_PATH_VARIABLE)
    return fromEnvironment ~= nil and fromEnvironment ~= "" and fromEnvironment or DEFAULT_SETTINGS_PATH
end
--- Loads the settings; a mistake raises an error that names the key, which stops Dovecot's auth process.
function ____exports.scriptInit()
    local path = ____exports.settingsPath()
    local loaded, settingsOrError = pcall(loadSettings, path)
    if not loaded then
        error(
            "oauth2-bridge: " .. formatError(settingsOrError),
            0
        )
    end
    local settings = settingsOrError
    local accounts = __TS__New(PostfixAccountsFile, settings.account_file)
    local problem = accounts:refresh()
    if problem ~= nil then
        error(("oauth2-bridge: account_file: " .. problem) .. ". Check the path and its permissions", 0)
    end
    bridge = {
        settings = settings,
        accounts = accounts,
        httpGet = httpGet,
        now = function() return os.time() end
    }
    return 0
end
function ____exports.scriptDeinit()
    bridge = nil
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
        return decision(log, "OK", "Token accepted")
    end
    return decision(log, verdict.result, verdict.reason)
end
_G.script_init = ____exports.scriptInit
_G.script_deinit = ____exports.scriptDeinit
_G.auth_password_verify = ____exports.authPasswordVerify
____exports.accounts = require("accounts")
____exports.config = require("config")
____exports.identity = require("identity")
____exports.json = require("json")
____exports.passdb = require("passdb")
____exports.policy = require("policy")
____exports.connection = require("connection")
____exports.url = require("url")
return ____exports
 end,
}
local ____entry = require("main", ...)
return ____entry
