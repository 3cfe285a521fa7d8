-- nn.Sequential{m1, m2, ...}: applies its children in order. Children are
-- named '0', '1', ... (PyTorch's names); an entry {'name', module} gives a
-- child its own name, as PyTorch's Sequential(OrderedDict(...)).
--   nn.Sequential{nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)}   -- 0.weight, 2.bias, ...
--   nn.Sequential{{'conv', nn.Conv2d(3, 8, 3)}, {'act', nn.ReLU()}} -- conv.weight
local Module = require 'gam.nn.Module'
local argcheck = require 'gam.argcheck'

local Sequential = Module:extend('Sequential')

function Sequential:__init(list)
  if list ~= nil and type(list) ~= 'table' then
    argcheck.raise('Sequential: expected a table of modules, e.g. nn.Sequential{nn.Linear(2, 3), nn.ReLU()}')
  end
  if Module.is_module(list) then
    argcheck.raise('Sequential: pass the modules in a table: nn.Sequential{m1, m2}')
  end
  for i, m in ipairs(list or {}) do
    if Module.is_module(m) then
      self:add(m)
    elseif type(m) == 'table' and type(m[1]) == 'string' and Module.is_module(m[2]) then
      self:add(m[2], m[1])
    else
      argcheck.fail('Sequential: entry %d is not a module (nor a {name, module} pair)', i)
    end
  end
end

--- seq:add(module, name): appends a child (default name: its position, from '0')
function Sequential:add(m, name)
  if not Module.is_module(m) then argcheck.raise('Sequential:add: expected a module, got ' .. type(m)) end
  self:add_module(name or tostring(#self._child_names), m)
  return self
end

--- seq:get(i): the i-th child (1-based)
function Sequential:get(i)
  local n = self._child_names[i]
  if not n then argcheck.fail('Sequential:get: index %s out of range [1, %d]', tostring(i), #self._child_names) end
  return self[n]
end

function Sequential:size() return #self._child_names end

function Sequential:forward(x)
  for _, n in ipairs(self._child_names) do x = self[n](x) end
  return x
end

return Sequential
