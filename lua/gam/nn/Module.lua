-- nn.Module — the base of every layer and model (torch.nn.Module's contract).
--
-- A module holds, in registration order, its parameters (leaf float32
-- tensors with requires_grad), its buffers (state that is not trained, such
-- as BatchNorm's running statistics) and its child modules. Each is also a
-- plain field: `self.weight`, `self.running_mean`, `self.layer1`.
--
--   local Block = nn.Module:extend('Block')
--   function Block:__init(c)
--     self:add_module('conv', nn.Conv2d(c, c, 3, {padding = 1}))
--     self:register_parameter('scale', gam.ones({c, 1, 1}))
--   end
--   function Block:forward(x) return self.conv(x) * self.scale end
--
-- Names are PyTorch's dotted names: 'layer1.0.conv1.weight', '0.weight',
-- '1.running_mean'. named_parameters() and named_buffers() return ordered
-- lists of entries {name = 'fc.weight', tensor = t} (also readable as
-- entry[1], entry[2]).
--
-- state_dict() maps every name to a detached view of the parameter or buffer
-- (sharing its storage, like PyTorch; pass {copy = true} for independent
-- copies). load_state_dict(sd, {strict = true}) copies by name, in place, and
-- raises an error naming every missing, unexpected or mis-shaped entry before
-- changing anything. Keys '<bn>.num_batches_tracked' from PyTorch checkpoints
-- are accepted and ignored (gamlua's BatchNorm2d keeps no such counter).
--
-- flat_parameters() moves the parameters into one contiguous buffer and their
-- gradients into another (engine/arena.c) and returns both 1-D tensors; every
-- parameter, and its .grad, is then a view of its slice. The pair is made once
-- and cached. zero_grad() zeroes gradients in place (never sets them to nil).
local ffi = require 'ffi'
local C = require 'gam.lib'
local tensor = require 'gam.tensor'
local argcheck = require 'gam.argcheck'
local gam_keep, is_tensor = tensor.keep, tensor.is_tensor

local Module = {}
Module.__index = Module
Module.__typename = 'Module'
Module.__call = function(self, ...) return self:forward(...) end
Module.__tostring = function(self) return self:repr() end

-- params that already live in some module's arena -> that module (weak keys)
local arena_owner = setmetatable({}, {__mode = 'k'})

-- ---- classes ---------------------------------------------------------------------
local function construct(cls, ...)
  local self = setmetatable({}, cls)
  rawset(self, '_param_names', {})
  rawset(self, '_buffer_names', {})
  rawset(self, '_child_names', {})
  rawset(self, 'training', true)
  self:__init(...)
  return self
end

--- Module:extend(name) -> a subclass; calling the class, Cls(...), constructs
-- an instance and runs Cls.__init(self, ...).
function Module.extend(parent, name)
  if type(name) ~= 'string' then argcheck.raise('Module.extend: the class needs a name (a string)') end
  local cls = {__typename = name, super = parent}
  cls.__index = cls
  cls.__call = Module.__call
  cls.__tostring = Module.__tostring
  return setmetatable(cls, {__index = parent, __call = construct,
                            __tostring = function() return 'nn.' .. name .. ' (class)' end})
end
setmetatable(Module, {__call = construct, __tostring = function() return 'nn.Module (class)' end})

function Module:__init() end

function Module:forward()
  argcheck.raise(self.__typename .. ': forward is not implemented')
end

--- nn.Module.is_module(v): true when v is a module instance
function Module.is_module(v)
  return type(v) == 'table' and type(rawget(v, '_param_names')) == 'table' and getmetatable(v) ~= nil
end

--- m:isinstance(cls): true when m's class is cls or derives from it
function Module:isinstance(cls)
  local c = getmetatable(self)
  while c do
    if c == cls then return true end
    c = rawget(c, 'super')
  end
  return false
end

-- ---- registration --------------------------------------------------------------------
local function check_name(self, name, what)
  if type(name) ~= 'string' or name == '' then
    argcheck.fail('%s: %s name must be a non-empty string, got %s', self.__typename, what,
                        tostring(name))
  end
  if name:find('.', 1, true) then
    argcheck.fail("%s: %s name '%s' must not contain '.'", self.__typename, what, name)
  end
  if name == 'training' or name:sub(1, 1) == '_' or Module[name] ~= nil or getmetatable(self)[name] ~= nil then
    argcheck.fail("%s: %s name '%s' is reserved (a method or field of every module)", self.__typename, what, name)
  end
end

local function append_once(list, name)
  for _, n in ipairs(list) do if n == name then return end end
  list[#list + 1] = name
end

local function check_fresh(self, name, kind)
  local lists = {parameter = self._param_names, buffer = self._buffer_names, module = self._child_names}
  for k, list in pairs(lists) do
    if k ~= kind then
      for _, n in ipairs(list) do
        if n == name then
          argcheck.fail("%s: '%s' is already a %s, cannot also be a %s", self.__typename, name, k, kind)
        end
      end
    end
  end
end

--- self:register_parameter(name, t): t becomes a trainable leaf (requires_grad,
-- kept beyond any gam.scope); nil registers nothing (e.g. bias = false).
function Module:register_parameter(name, t)
  check_name(self, name, 'parameter')
  if t == nil then rawset(self, name, nil); return end
  if not is_tensor(t) then
    argcheck.fail("%s: parameter '%s' must be a tensor, got %s", self.__typename, name, type(t))
  end
  if t:dtype() ~= 'float32' then
    argcheck.fail("%s: parameter '%s' must be float32, got %s", self.__typename, name, t:dtype())
  end
  if t:grad_fn() then
    argcheck.fail("%s: parameter '%s' must be a leaf tensor, it was made by %s", self.__typename, name,
                        t:grad_fn())
  end
  check_fresh(self, name, 'parameter')
  t:requires_grad_(true)
  gam_keep(t)
  rawset(self, name, t)
  append_once(self._param_names, name)
  return t
end

--- self:register_buffer(name, t): state saved in state_dict, not trained
function Module:register_buffer(name, t)
  check_name(self, name, 'buffer')
  if t ~= nil and not is_tensor(t) then
    argcheck.fail("%s: buffer '%s' must be a tensor, got %s", self.__typename, name, type(t))
  end
  check_fresh(self, name, 'buffer')
  if t ~= nil then gam_keep(t) end
  rawset(self, name, t)
  append_once(self._buffer_names, name)
  return t
end

--- self:add_module(name, m): a child module, reachable as self[name]
function Module:add_module(name, m)
  if type(name) == 'number' then name = tostring(name) end
  check_name(self, name, 'module')
  if not Module.is_module(m) then
    argcheck.fail("%s: child '%s' must be an nn module, got %s", self.__typename, name, type(m))
  end
  check_fresh(self, name, 'module')
  rawset(self, name, m)
  append_once(self._child_names, name)
  return m
end

-- ---- traversal -------------------------------------------------------------------
--- m:children() -> list of direct child modules, in registration order
function Module:children()
  local r = {}
  for _, n in ipairs(self._child_names) do r[#r + 1] = self[n] end
  return r
end

--- m:named_children() -> list of {name =, module =}
function Module:named_children()
  local r = {}
  for _, n in ipairs(self._child_names) do r[#r + 1] = {name = n, module = self[n], n, self[n]} end
  return r
end

local function walk(self, prefix, out, seen)
  if seen[self] then return end
  seen[self] = true
  out[#out + 1] = {name = prefix, module = self, prefix, self}
  for _, n in ipairs(self._child_names) do
    walk(self[n], prefix == '' and n or (prefix .. '.' .. n), out, seen)
  end
end

--- m:named_modules() -> list of {name =, module =}, depth first, m itself first (name '')
function Module:named_modules()
  local out = {}
  walk(self, '', out, {})
  return out
end

--- m:modules() -> every module of the tree, depth first, m itself first
function Module:modules()
  local r = {}
  for i, e in ipairs(self:named_modules()) do r[i] = e.module end
  return r
end

local function named_tensors(self, list_field)
  local out, seen = {}, {}
  for _, e in ipairs(self:named_modules()) do
    local m = e.module
    for _, n in ipairs(m[list_field]) do
      local t = rawget(m, n)
      if t ~= nil and not seen[t] then
        seen[t] = true
        local full = e.name == '' and n or (e.name .. '.' .. n)
        out[#out + 1] = {name = full, tensor = t, full, t}
      end
    end
  end
  return out
end

--- m:named_parameters() -> ordered list of {name = 'layer1.0.conv1.weight', tensor = t}
function Module:named_parameters() return named_tensors(self, '_param_names') end

--- m:named_buffers() -> ordered list of {name = '1.running_mean', tensor = t}
function Module:named_buffers() return named_tensors(self, '_buffer_names') end

--- m:parameters() -> list of parameter tensors (PyTorch's registration order)
function Module:parameters()
  local r = {}
  for i, e in ipairs(self:named_parameters()) do r[i] = e.tensor end
  return r
end

function Module:buffers()
  local r = {}
  for i, e in ipairs(self:named_buffers()) do r[i] = e.tensor end
  return r
end

--- m:num_parameters() -> total number of trainable values
function Module:num_parameters()
  local n = 0
  for _, p in ipairs(self:parameters()) do n = n + p:numel() end
  return n
end

--- m:apply(fn): fn(module) for every module, children before parents (as PyTorch)
function Module:apply(fn)
  if type(fn) ~= 'function' then argcheck.raise('apply: expected a function') end
  for _, c in ipairs(self:children()) do c:apply(fn) end
  fn(self)
  return self
end

-- ---- modes ----------------------------------------------------------------------------
--- m:train(mode): training mode (default true) for m and every submodule
function Module:train(mode)
  if mode == nil then mode = true end
  for _, m in ipairs(self:modules()) do rawset(m, 'training', mode and true or false) end
  return self
end

--- m:evaluate(): evaluation mode (BatchNorm uses running stats, Dropout is off)
function Module:evaluate() return self:train(false) end
Module.eval = Module.evaluate

-- ---- gradients and the flat arena ------------------------------------------------------------
--- m:zero_grad(): gradients to zero, in place (the flat gradient when the arena exists)
function Module:zero_grad()
  local fg = rawget(self, '_flat_grad')
  if fg then
    fg:fill_(0)
    return self
  end
  for _, p in ipairs(self:parameters()) do
    local g = p.grad
    if g then
      g:fill_(0)
      tensor.release(g)
    end
  end
  return self
end

--- m:flat_parameters() -> flat, flat_grad (1-D, every parameter and its .grad a view of them)
function Module:flat_parameters()
  local flat = rawget(self, '_flat')
  if flat then return flat, rawget(self, '_flat_grad') end
  local named = self:named_parameters()
  if #named == 0 then argcheck.raise(self.__typename .. ':flat_parameters: the module has no parameters') end
  local arr = ffi.new('gam_tensor*[?]', #named)
  for i, e in ipairs(named) do
    local owner = arena_owner[e.tensor]
    if owner and owner ~= self then
      argcheck.fail("flat_parameters: parameter '%s' already lives in the flat arena of another module "
                          .. '(a model containing this one); use that model\'s flat_parameters()', e.name)
    end
    arr[i - 1] = tensor.T(e.tensor, 'flat_parameters', "parameter '" .. e.name .. "'")
  end
  local out = ffi.new('gam_tensor*[2]')
  tensor.check(C.gam_flatten_params(arr, #named, out, out + 1))
  flat = gam_keep(tensor.wrap(out[0]))
  local flat_grad = gam_keep(tensor.wrap(out[1]))
  rawset(self, '_flat', flat)
  rawset(self, '_flat_grad', flat_grad)
  for _, e in ipairs(named) do arena_owner[e.tensor] = self end
  return flat, flat_grad
end

--- m:to(device): moves parameters and buffers (in place; returns m). A model
-- that already has its flat arena gets a new one on the new device.
function Module:to(device)
  if device ~= 'cpu' and device ~= 'cuda' then
    argcheck.fail("to: expected a device ('cpu' or 'cuda'), got %s", tostring(device))
  end
  local moved = false
  for _, m in ipairs(self:modules()) do
    for _, n in ipairs(m._param_names) do
      local p = rawget(m, n)
      if p ~= nil and p:device() ~= device then
        local q = tensor.no_grad(function() return p:detach():to(device) end)
        q:requires_grad_(true)
        rawset(m, n, gam_keep(q))
        moved = true
      end
    end
    for _, n in ipairs(m._buffer_names) do
      local b = rawget(m, n)
      if b ~= nil and b:device() ~= device then
        rawset(m, n, gam_keep(b:to(device)))
      end
    end
  end
  if moved and rawget(self, '_flat') then
    rawset(self, '_flat', nil)
    rawset(self, '_flat_grad', nil)
    self:flat_parameters()
  end
  return self
end

-- ---- state dicts -----------------------------------------------------------------------------
local function shape_str(t)
  return '[' .. table.concat(t:shape(), ', ') .. ']'
end

local function same_shape(a, b)
  local sa, sb = a:shape(), b:shape()
  if #sa ~= #sb then return false end
  for i = 1, #sa do if sa[i] ~= sb[i] then return false end end
  return true
end

--- m:state_dict({copy = false}) -> {[name] = tensor} for every parameter and buffer;
-- detached views sharing storage by default, independent copies with copy = true.
function Module:state_dict(opts)
  local copy = opts and opts.copy
  local sd = {}
  tensor.no_grad(function()
    for _, list in ipairs {self:named_parameters(), self:named_buffers()} do
      for _, e in ipairs(list) do
        local v = e.tensor:detach()
        sd[e.name] = copy and v:clone() or v
      end
    end
  end)
  return sd
end

--- m:state_names() -> the names of state_dict, in order (parameters, then buffers)
function Module:state_names()
  local r = {}
  for _, e in ipairs(self:named_parameters()) do r[#r + 1] = e.name end
  for _, e in ipairs(self:named_buffers()) do r[#r + 1] = e.name end
  return r
end

--- m:load_state_dict(sd, {strict = true}) -> {missing_keys =, unexpected_keys =}
function Module:load_state_dict(sd, opts)
  if type(sd) ~= 'table' then
    argcheck.raise('load_state_dict: expected a table {[name] = tensor}, got ' .. type(sd))
  end
  local strict = true
  if opts ~= nil then
    if type(opts) ~= 'table' then argcheck.raise('load_state_dict: options must be a table like {strict = false}') end
    if opts.strict ~= nil then strict = opts.strict and true or false end
  end
  local targets, known = {}, {}
  for _, list in ipairs {self:named_parameters(), self:named_buffers()} do
    for _, e in ipairs(list) do
      targets[#targets + 1] = e
      known[e.name] = true
    end
  end
  local bn_prefix = {}
  for _, e in ipairs(self:named_modules()) do
    if rawget(e.module, 'running_mean') ~= nil then bn_prefix[e.name] = true end
  end

  local missing, unexpected, problems = {}, {}, {}
  for _, e in ipairs(targets) do
    local v = sd[e.name]
    if v == nil then
      missing[#missing + 1] = e.name
      problems[#problems + 1] = string.format("missing key '%s' (the model has shape %s)", e.name, shape_str(e.tensor))
    elseif not is_tensor(v) then
      problems[#problems + 1] = string.format("entry '%s' is a %s, not a tensor", e.name, type(v))
    elseif v.t == nil then
      problems[#problems + 1] = string.format("entry '%s' is a released tensor", e.name)
    elseif not same_shape(v, e.tensor) then
      problems[#problems + 1] = string.format("size mismatch for '%s': the state dict has shape %s, the model %s",
                                              e.name, shape_str(v), shape_str(e.tensor))
    end
  end
  local extra = {}
  for k in pairs(sd) do
    if not known[k] then
      local owner = type(k) == 'string' and k:match('^(.-)%.?num_batches_tracked$')
      if not (owner and bn_prefix[owner]) then extra[#extra + 1] = k end
    end
  end
  table.sort(extra, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(extra) do
    unexpected[#unexpected + 1] = k
    local v = sd[k]
    problems[#problems + 1] = string.format("unexpected key '%s'%s", tostring(k),
                                            is_tensor(v) and v.t ~= nil and (' (shape ' .. shape_str(v) .. ')') or '')
  end

  local fatal = {}
  for _, p in ipairs(problems) do
    local soft = p:match('^missing key') or p:match('^unexpected key')
    if strict or not soft then fatal[#fatal + 1] = p end
  end
  if #fatal > 0 then
    argcheck.fail('load_state_dict (%s): %s', self.__typename, table.concat(fatal, '; '))
  end
  tensor.no_grad(function()
    for _, e in ipairs(targets) do
      local v = sd[e.name]
      if v ~= nil then e.tensor:copy_(v) end
    end
  end)
  return {missing_keys = missing, unexpected_keys = unexpected}
end

-- ---- printing ------------------------------------------------------------------------------
--- Python's repr of a float: shortest round-trip digits, '.0' on integers
function Module.pyfloat(v)
  if v ~= v then return 'nan' end
  if v == math.huge then return 'inf' end
  if v == -math.huge then return '-inf' end
  if v == math.floor(v) and math.abs(v) < 1e16 then return string.format('%.1f', v) end
  local s
  for p = 1, 17 do
    s = string.format('%.' .. p .. 'g', v)
    if tonumber(s) == v then break end
  end
  return s
end

--- Python's repr of an int, a bool, or an int tuple given as a table
function Module.pyval(v)
  if type(v) == 'boolean' then return v and 'True' or 'False' end
  if type(v) == 'table' then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = Module.pyval(x) end
    return '(' .. table.concat(parts, ', ') .. (#parts == 1 and ',)' or ')')
  end
  if type(v) == 'number' then
    if v == math.floor(v) then return string.format('%d', v) end
    return Module.pyfloat(v)
  end
  return tostring(v)
end

--- the text inside the parentheses of this module's line (override in layers)
function Module:extra_repr() return '' end

local function add_indent(s, n)
  local pad = string.rep(' ', n)
  return (s:gsub('\n', '\n' .. pad))
end

--- the tree, formatted like PyTorch's repr
function Module:repr()
  local lines = {}
  local extra = self:extra_repr()
  if extra ~= '' then
    for line in (extra .. '\n'):gmatch('(.-)\n') do lines[#lines + 1] = line end
  end
  local nextra = #lines
  for _, n in ipairs(self._child_names) do
    lines[#lines + 1] = '(' .. n .. '): ' .. add_indent(self[n]:repr(), 2)
  end
  local s = self.__typename .. '('
  if #lines > 0 then
    if nextra == 1 and #lines == 1 then
      s = s .. lines[1]
    else
      s = s .. '\n  ' .. table.concat(lines, '\n  ') .. '\n'
    end
  end
  return s .. ')'
end

return Module
