-- gam.repl — the Lua side of the gamlua REPL (the host loads it when the REPL
-- opens; trepl is the model):
--
--   help(x)      the doc comment of x: a module or class (its file's header
--   ?x           comment, then its functions), a function (the `--`/`---`
--                comment block above its definition), a tensor (gam.tensor's
--                header and the tensor's shape), or a name: help 'gam.optim.GAM'
--   Tab          M.complete: globals, keywords, fields, methods, lazy modules
--   results      print as `print` does, except tensors (full repr, plus one line
--                of statistics when the repr is abbreviated) and plain tables
--                (their fields, one level, tensors shown by shape)
--
-- Docs are read from the source files the functions were loaded from
-- (debug.getinfo), so they are the comments of the code itself.
local M = {}

local lines_cache = {}
local function file_lines(path)
  if lines_cache[path] == nil then
    local t, f = {}, io.open(path, 'r')
    if f then
      for line in f:lines() do t[#t + 1] = line end
      f:close()
    end
    lines_cache[path] = t
  end
  return lines_cache[path]
end

local function strip(line) return (line:gsub('^%s*%-%-%-?%s?', '')) end

-- the first comment block of a file
local function header(path)
  local out = {}
  for i, line in ipairs(file_lines(path)) do
    local shebang = i == 1 and line:match('^#')
    if not shebang then
      if not line:match('^%s*%-%-') then break end
      out[#out + 1] = strip(line)
    end
  end
  return #out > 0 and table.concat(out, '\n') or nil
end

-- the comment block right above line n of a file
local function comment_above(path, n)
  local lines, out = file_lines(path), {}
  local i = n - 1
  while i >= 1 and lines[i]:match('^%s*%-%-') do
    table.insert(out, 1, strip(lines[i]))
    i = i - 1
  end
  return #out > 0 and table.concat(out, '\n') or nil
end

-- the source file of a Lua function, and its first line
local function where(fn)
  local info = debug.getinfo(fn, 'S')
  if not info or info.what == 'C' or info.source:sub(1, 1) ~= '@' then return nil end
  return info.source:sub(2), info.linedefined
end

-- the module name and file of a value that some module returned
local function module_of(x)
  local best
  for name, v in pairs(package.loaded) do
    if rawequal(v, x) and (not best or #name < #best) then best = name end
  end
  if best then return best, package.searchpath(best, package.path) end
end

local function is_tensor(x)
  local t = package.loaded['gam.tensor']
  return t ~= nil and t.is_tensor(x)
end

local function shape_text(x)
  return table.concat(x:shape(), 'x') .. ' ' .. x:dtype() .. ' ' .. x:device()
end

-- the function fields of a table and of the tables its metatables' __index lead to
local function methods(t)
  local names, seen = {}, {}
  for _ = 1, 8 do
    if type(t) ~= 'table' then break end
    for k, v in pairs(t) do
      if type(k) == 'string' and type(v) == 'function' and not seen[k] and not k:match('^_') then
        seen[k] = true
        names[#names + 1] = k
      end
    end
    local mt = getmetatable(t)
    t = type(mt) == 'table' and mt.__index or nil
  end
  table.sort(names)
  return names
end

-- a value named by a dotted path from _G, else by require
local function resolve(name)
  local v = _G
  for part in name:gmatch('[^%.]+') do
    if type(v) ~= 'table' then v = nil break end
    v = v[part]
  end
  if v ~= nil then return v end
  local ok, m = pcall(require, name)
  if ok then return m end
end

--- M.doc(x): the documentation text of x (see the header), or nil
function M.doc(x)
  if type(x) == 'string' then
    local v = resolve(x)
    return v ~= nil and M.doc(v) or nil
  end
  if type(x) == 'function' then
    local path, line = where(x)
    if not path then return nil end
    local text = comment_above(path, line)
    local def = file_lines(path)[line] or ''
    return (text and text .. '\n' or '') .. string.format('(%s:%d) %s', path, line, def:gsub('^%s+', ''))
  end
  if is_tensor(x) then
    local _, path = module_of(package.loaded['gam.tensor'])
    return 'a tensor of shape ' .. shape_text(x) .. (path and '\n\n' .. (header(path) or '') or '')
  end
  if type(x) == 'table' then
    local name, path = module_of(x)
    local text
    if path then text = header(path) end
    if not text then -- an instance: its class; or a class that is no module: the file of one of its functions
      local mt = getmetatable(x)
      if type(mt) == 'table' and mt ~= x and (mt.__index == mt or module_of(mt)) then return M.doc(mt) end
      for _, v in pairs(x) do
        if type(v) == 'function' then
          local p = where(v)
          if p then text = header(p) break end
        end
      end
    end
    local fns = methods(x)
    if not text and #fns == 0 then return nil end
    local out = {text or ('(' .. (name or 'a table') .. ': no doc comment)')}
    if #fns > 0 then out[#out + 1] = '\nfunctions: ' .. table.concat(fns, ', ') end
    return table.concat(out, '\n')
  end
  return nil
end

--- help(x) / ?x: prints the documentation of x
function M.help(...)
  if select('#', ...) == 0 then
    print('help(x) or ?x prints the doc comment of a module, class, function or tensor:\n'
          .. "  help(gam.optim.GAM)   ?gam.nn.Conv2d   help(gam.zeros)   help 'gam.data.loader'\n"
          .. 'Tab completes names, fields and methods (gam.opt<Tab>, model:<Tab>).')
    return
  end
  local x = ...
  local text = M.doc(x)
  if text then print(text)
  elseif type(x) == 'function' then print(tostring(x) .. ' is a built-in function: no Lua source, no doc comment')
  else print('no documentation found for ' .. (type(x) == 'string' and x or tostring(x))) end
end

-- one line of statistics of a float tensor: min, max, mean, std over every element
local function stats(x)
  local buf, n = x:data_copy()
  local lo, hi, s, s2 = math.huge, -math.huge, 0, 0
  for i = 0, n - 1 do
    local v = buf[i]
    if v < lo then lo = v end
    if v > hi then hi = v end
    s, s2 = s + v, s2 + v * v
  end
  local mean = s / n
  return string.format('-- %d elements: min %.4g, max %.4g, mean %.4g, std %.4g', n, lo, hi, mean,
                       math.sqrt(math.max(0, s2 / n - mean * mean)))
end

local function short(v)
  if is_tensor(v) then return 'tensor[' .. shape_text(v) .. ']' end
  if type(v) == 'string' then return string.format('%q', v) end
  return tostring(v)
end

-- a plain table's fields, one level
local function table_summary(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == 'number' or type(a) == 'string') then return a < b end
    return type(a) < type(b)
  end)
  local parts = {}
  for i, k in ipairs(keys) do
    if i > 40 then parts[#parts + 1] = string.format('... (%d fields)', #keys) break end
    local key = type(k) == 'string' and k:match('^[%a_][%w_]*$') and k or '[' .. short(k) .. ']'
    parts[#parts + 1] = key .. ' = ' .. short(t[k])
  end
  return '{' .. table.concat(parts, ', ') .. '}'
end

--- the REPL's printer of results (the host calls _GAMLUA.repl_print)
function M.print(...)
  local n = select('#', ...)
  local out = {}
  for i = 1, n do
    local v = select(i, ...)
    if is_tensor(v) then
      local s = tostring(v)
      if v:dtype() == 'float32' and v:numel() > 1000 then s = s .. '\n' .. stats(v) end
      out[i] = s
    elseif type(v) == 'table' and not (getmetatable(v) and getmetatable(v).__tostring) and getmetatable(v) == nil then
      out[i] = table_summary(v)
    else
      out[i] = tostring(v)
    end
  end
  print(table.concat(out, '\t'))
end

local KEYWORDS = {'and', 'break', 'do', 'else', 'elseif', 'end', 'false', 'for', 'function', 'if', 'in', 'local',
                  'nil', 'not', 'or', 'repeat', 'return', 'then', 'true', 'until', 'while'}

--- M.complete(text): the sorted completions of the word before the cursor (the host's
-- Tab): keywords and globals; after `a.b.` or `a:` the fields of that value, of the
-- tables its metatables' __index lead to (methods of instances, classes and their
-- bases), the names a metatable's __lazy lists (modules loaded on first use), and
-- for tensors (cdata) the Tensor methods
function M.complete(text)
  local path, sep, part = text:match('^(.-)([.:]?)([%w_]*)$')
  if not path or (sep == '' and path ~= '') then return {} end
  local out, seen = {}, {}
  local function add(k, prefix)
    if type(k) == 'string' and k:match('^[%a_][%w_]*$') and k:sub(1, #part) == part and not seen[k] then
      seen[k] = true
      out[#out + 1] = prefix .. k
    end
  end
  local function fields(v, prefix)
    for _ = 1, 8 do
      if type(v) == 'table' then for k in pairs(v) do add(k, prefix) end end
      if type(v) == 'string' then v = string end
      if type(v) == 'cdata' and package.loaded['gam.tensor'] then
        for k in pairs(package.loaded['gam.tensor'].Tensor) do add(k, prefix) end
        add('grad', prefix)
        add('requires_grad', prefix)
        return
      end
      local mt = (type(v) == 'table' or type(v) == 'string') and getmetatable(v)
      if type(mt) == 'table' and type(mt.__lazy) == 'table' then
        for k in pairs(mt.__lazy) do add(k, prefix) end
      end
      if type(mt) ~= 'table' or type(mt.__index) ~= 'table' then return end
      v = mt.__index
    end
  end
  if sep == '' then
    for _, k in ipairs(KEYWORDS) do add(k, '') end
    fields(_G, '')
  else
    local v = _G
    for name in (path .. '.'):gmatch('(.-)%.') do
      if not name:match('^[%a_][%w_]*$') or type(v) ~= 'table' then return {} end
      v = v[name]
    end
    fields(v, path .. sep)
  end
  table.sort(out)
  return out
end

--- installs help (global), the printer and the completion
function M.install()
  rawset(_G, 'help', M.help)
  local host = rawget(_G, '_GAMLUA')
  if host then host.repl_print, host.complete = M.print, M.complete end
end

return M
