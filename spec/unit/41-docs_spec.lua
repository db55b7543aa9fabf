-- The pages in docs/ are checked against the code, so they cannot drift from it. Every settings
-- example parses with the bridge's own parser, and the settings reference lists every key with
-- its default. The troubleshooting headings quote messages that src/ still writes, and links
-- resolve.

local lfs = require("lfs")
local helper = require("spec.unit.helper")

local DOCS = "docs"
local SETTINGS_PAGE = "docs/settings.md"
local TROUBLESHOOTING_PAGE = "docs/troubleshooting.md"
local EXAMPLE_MARKER = "```ini oauth2-bridge"

-- Pages that must show at least one settings example.
local PAGES_WITH_EXAMPLES = {
  "docs/quick-start.md",
  "docs/settings.md",
  "docs/migration.md",
  "docs/docker-mailserver.md",
  "docs/idp-authentik.md",
  "docs/idp-keycloak.md",
  "docs/idp-authelia.md",
  "docs/idp-zitadel.md",
  "docs/idp-kanidm.md",
  "docs/idp-entra.md",
  "docs/idp-google.md",
}

-- Keys whose value must name an existing file; the examples use paths of the target system.
local FILE_KEYS = { account_file = true, tls_ca_cert_file = true, ldap_bind_password_file = true }

local function doc_pages()
  local pages = {}
  for entry in lfs.dir(DOCS) do
    if entry:match("%.md$") then
      pages[#pages + 1] = DOCS .. "/" .. entry
    end
  end
  table.sort(pages)
  return pages
end

--- Returns the settings examples of a page: { line = first line number, text = block text }.
local function settings_examples(path)
  local examples, current, line_number = {}, nil, 0
  for line in io.lines(path) do
    line_number = line_number + 1
    if current == nil and line == EXAMPLE_MARKER then
      current = { line = line_number + 1, lines = {} }
    elseif current ~= nil and line == "```" then
      examples[#examples + 1] = { line = current.line, text = table.concat(current.lines, "\n") .. "\n" }
      current = nil
    elseif current ~= nil then
      current.lines[#current.lines + 1] = line
    end
  end
  assert(current == nil, path .. ": a settings example is not closed")
  return examples
end

--- Replaces the value of each file key with an existing temporary file.
local function with_existing_files(text)
  local accounts = helper.accounts_file({ helper.USER })
  local password = helper.temp_file(helper.LDAP_PASSWORD .. "\n")
  local replaced = text:gsub("\n?([%w_]+)( *= *)[^\n]*", function(key, equals)
    if not FILE_KEYS[key] then
      return nil
    end
    local file = key == "ldap_bind_password_file" and password or accounts
    return "\n" .. key .. equals .. file
  end)
  return "\n" .. replaced
end

--- Returns the rows of the settings table: key -> { type, default, meaning, dovecot }.
local function settings_rows()
  local rows = {}
  for line in io.lines(SETTINGS_PAGE) do
    local key, rest = line:match("^| `([%w_]+)` |(.*)$")
    if key ~= nil then
      local cells = {}
      for cell in rest:gmatch("([^|]*)|") do
        cells[#cells + 1] = cell:match("^%s*(.-)%s*$")
      end
      assert(rows[key] == nil, "settings.md lists " .. key .. " twice")
      rows[key] = { type = cells[1], default = cells[2], meaning = cells[3], dovecot = cells[4] }
    end
  end
  return rows
end

after_each(helper.remove_temp_files)

describe("docs settings examples", function()
  local config

  before_each(function()
    config = helper.load_bridge().config
  end)

  for _, path in ipairs(doc_pages()) do
    for index, example in ipairs(settings_examples(path)) do
      it(("parse in %s, example %d"):format(path, index), function()
        local origin = ("%s line %d"):format(path, example.line)

        local ok, problem = pcall(config.parseSettings, with_existing_files(example.text), origin)

        assert(ok, type(problem) == "table" and problem.message or tostring(problem))
      end)
    end
  end

  for _, path in ipairs(PAGES_WITH_EXAMPLES) do
    it("exist in " .. path, function()
      assert.is_true(#settings_examples(path) > 0, path .. " has no " .. EXAMPLE_MARKER .. " block")
    end)
  end
end)

describe("docs settings reference", function()
  local check_bundle
  local rows

  before_each(function()
    check_bundle = dofile("lua-out/oauth2-check.lua")
    rows = settings_rows()
  end)

  it("lists every key", function()
    local missing = {}
    for key in pairs(check_bundle.config.KEYS) do
      if rows[key] == nil then
        missing[#missing + 1] = key
      end
    end
    table.sort(missing)

    assert.same({}, missing)
  end)

  it("lists only known keys", function()
    local unknown = {}
    for key in pairs(rows) do
      if check_bundle.config.KEYS[key] == nil then
        unknown[#unknown + 1] = key
      end
    end
    table.sort(unknown)

    assert.same({}, unknown)
  end)

  it("shows each default", function()
    for key, spec in pairs(check_bundle.config.KEYS) do
      local expected = spec.defaultValue == nil and "(none)" or ("`" .. spec.defaultValue .. "`")
      assert.equal(expected, rows[key] and rows[key].default, "default of " .. key)
    end
  end)

  it("shows each range", function()
    for key, spec in pairs(check_bundle.config.KEYS) do
      if spec.kind == "integer" then
        assert.contains_text(rows[key].type, ("%d to %d"):format(spec.min, spec.max))
      end
    end
  end)

  it("shows each choice", function()
    for key, spec in pairs(check_bundle.config.KEYS) do
      for _, choice in ipairs(spec.choices or {}) do
        assert.contains_text(rows[key].type, "`" .. choice .. "`")
      end
    end
  end)

  it("marks booleans", function()
    for key, spec in pairs(check_bundle.config.KEYS) do
      if spec.kind == "boolean" then
        assert.equal("boolean", rows[key].type, key)
      end
    end
  end)

  it("names the matching Dovecot key", function()
    for key, spec in pairs(check_bundle.config.KEYS) do
      local expected = spec.dovecot and ("`" .. key .. "`") or ""
      assert.equal(expected, rows[key].dovecot, "Dovecot column of " .. key)
    end
  end)

  it("lists the rejected Dovecot keys", function()
    local text = helper.read_file(SETTINGS_PAGE)
    for _, key in ipairs(check_bundle.settings.DOVECOT_ONLY_KEYS) do
      assert.contains_text(text, "`" .. key .. "`")
    end
  end)
end)

describe("docs troubleshooting", function()
  local source

  before_each(function()
    local parts = {}
    for entry in lfs.dir("src") do
      if entry:match("%.ts$") then
        parts[#parts + 1] = helper.read_file("src/" .. entry)
      end
    end
    source = table.concat(parts, "\n")
  end)

  -- Each heading quotes a log line, with … for the parts that vary. At least one literal piece of
  -- it, split at …, ": ", ". " and quotes, must still occur in src/. Headings marked (Dovecot)
  -- quote Dovecot's own messages.
  it("quotes messages from src", function()
    local checked = 0
    for line in io.lines(TROUBLESHOOTING_PAGE) do
      local message, rest = line:match("^### `(.-)`(.*)$")
      if message ~= nil and not rest:find("(Dovecot)", 1, true) then
        checked = checked + 1
        local found = false
        local pieces = message:gsub("…", "\1"):gsub(": ", "\1"):gsub("%. ", "\1"):gsub('"', "\1")
        for piece in pieces:gmatch("[^\1]+") do
          local trimmed = piece:match("^[%s%.,:;%(%)]*(.-)[%s%.,:;%(%)]*$")
          if #trimmed >= 12 and source:find(trimmed, 1, true) then
            found = true
          end
        end
        assert.is_true(found, "no message in src/ contains: " .. message)
      end
    end
    assert.is_true(checked >= 30, "only " .. checked .. " headings checked")
  end)
end)

describe("docs links", function()
  local function check_links(path, base)
    for target in helper.read_file(path):gmatch("%]%(([^)#:]+)[^)]*%)") do
      local resolved = base .. "/" .. target
      assert.is_truthy(lfs.attributes(resolved), path .. " links to " .. target .. ", which does not exist")
    end
  end

  for _, path in ipairs(doc_pages()) do
    it("resolve in " .. path, function()
      check_links(path, DOCS)
    end)
  end

  it("resolve in README.md", function()
    check_links("README.md", ".")
  end)

  it("list every page in README.md", function()
    local readme = helper.read_file("README.md")
    for _, path in ipairs(PAGES_WITH_EXAMPLES) do
      assert.contains_text(readme, "](" .. path .. ")")
    end
    assert.contains_text(readme, "](docs/troubleshooting.md)")
  end)
end)
