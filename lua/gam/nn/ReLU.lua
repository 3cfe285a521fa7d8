-- nn.ReLU(): y = max(x, 0), elementwise (always out of place).
local F = require 'gam.functional'
local Module = require 'gam.nn.Module'
local argcheck = require 'gam.argcheck'

local ReLU = Module:extend('ReLU')

function ReLU:__init(inplace)
  if inplace ~= nil and type(inplace) ~= 'boolean' then
    argcheck.raise('ReLU: the optional argument (inplace) must be true or false, got ' .. tostring(inplace))
  end
end

function ReLU:forward(x) return F.relu(x) end

return ReLU
