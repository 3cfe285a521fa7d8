-- cli.lua — the command-line flags of the scripts, through lua-argparse
-- (Debian lua-argparse, `require 'argparse'`). A script lists its flags in one
-- table, one line per flag:
--
--   {name, kind, default, help [, auto]}
--
-- kind: 'int' | 'number' | 'string' | 'bool' (a switch, default false) |
--       'optional' (--flag alone gives true, --flag VALUE / --flag=VALUE a string) |
--       'ints' | 'strings' (comma-separated lists: --batches 32,128).
-- A default of nil means 'auto': the script fills it in after parsing, and
-- `auto` (a short text) says in --help what it becomes. The parsed table is
-- keyed by the flag's name as written (args['batch-size']), every flag present
-- (defaults filled in, nil for auto). Loaded relative to the script:
--
--   local cli = dofile((SCRIPT:match('^(.*[/\\])') or '') .. 'cli.lua')
--   local args = cli.parse {name = 'train_cifar', flags = FLAGS, argv = arg, usage = ..., epilog = ...}
--
-- Errors (unknown flag, missing or malformed value) print
-- "<name>: <message> (see --help)" on stderr and exit with spec.exit_code (1).
local argparse = require 'argparse'

local M = {}

local ARGNAME = {int = 'N', number = 'X', string = 'S', optional = 'PATH', ints = 'N,N..', strings = 'S,S..'}

-- 'auto' text, on/off or the value shown in brackets after the help
local function shown_default(f)
  local kind, default = f[2], f[3]
  if default == nil then return f[5] end
  if kind == 'bool' or kind == 'optional' then return default and 'on' or 'off' end
  if type(default) == 'table' then return table.concat(default, ',') end
  return tostring(default)
end

-- a converter for argparse: value, or nil and the message
local function converter(name, kind)
  local function number(s)
    local v = tonumber(s)
    if not v or v ~= v then return nil, string.format("--%s needs a number, got '%s'", name, s) end
    if kind == 'int' or kind == 'ints' then
      if v ~= math.floor(v) or v == math.huge or v == -math.huge then
        return nil, string.format('--%s needs an integer, got %s', name, s)
      end
    end
    return v
  end
  if kind == 'int' or kind == 'number' then return number end
  if kind == 'ints' or kind == 'strings' then
    return function(s)
      local list = {}
      for item in s:gmatch('[^,]+') do
        if kind == 'ints' then
          local v, err = number(item)
          if v == nil then return nil, err end
          item = v
        end
        list[#list + 1] = item
      end
      if #list == 0 then return nil, string.format("--%s needs a comma-separated list, got '%s'", name, s) end
      return list
    end
  end
end

-- the argparse parser of a spec (see the header)
function M.parser(spec)
  local p = argparse(spec.name, spec.description, spec.epilog)
  p:usage(spec.usage or ('usage: gamlua scripts/' .. spec.name .. '.lua [flags]'))
  p:help_usage_margin(2):help_description_margin(spec.margin or 24):help_max_width(spec.width or 120)
  local opts = {}
  for _, f in ipairs(spec.flags) do
    local name, kind, help = f[1], f[2], f[4]
    local d = shown_default(f)
    local text = d and string.format('%s [%s]', help, d) or help
    local opt
    if kind == 'bool' then
      opt = p:flag('--' .. name, text)
    else
      opt = p:option('--' .. name, text):argname(ARGNAME[kind] or 'S')
      if kind == 'optional' then opt:args('?') end
      local conv = converter(name, kind)
      if conv then opt:convert(conv) end
    end
    opts[#opts + 1] = opt:target(name)
  end
  p:argument('extra'):args('*'):hidden(true)   -- words that are not flags: reported by parse
  p:group(spec.flags_title or 'flags (default in brackets)', unpack(opts))
  return p
end

-- the flags of argv (default: the global arg) as a table keyed by flag name
function M.parse(spec)
  local ok, r = M.parser(spec):pparse(spec.argv or arg or {})
  if not ok then
    local msg = tostring(r):gsub('\nDid you mean', '; did you mean')
    M.fail(spec.name, msg .. ' (see --help)', spec.exit_code)
  end
  if r.extra and r.extra[1] then
    M.fail(spec.name, "unknown argument '" .. r.extra[1] .. "' (see --help)", spec.exit_code)
  end
  local args = {}
  for _, f in ipairs(spec.flags) do
    local name, kind, v = f[1], f[2], r[f[1]]
    if kind == 'optional' and type(v) == 'table' then v = v[1] or true end
    if v == nil then v = f[3] end
    args[name] = v
  end
  return args
end

-- Prints "<name>: <msg>" on stderr and exits (code 1 unless given).
function M.fail(name, msg, code)
  io.stderr:write(name, ': ', msg, '\n')
  os.exit(code or 1)
end

-- The header comment of the script at path (its first comment block) as text:
-- the description of a script whose header is its documentation.
function M.header(path)
  local lines = {}
  for line in io.lines(path) do
    if not line:match('^%-%-') then break end
    lines[#lines + 1] = (line:gsub('^%-%- ?', ''))
  end
  return table.concat(lines, '\n')
end

return M
