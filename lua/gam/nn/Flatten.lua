-- nn.Flatten(start_dim = 2, end_dim = -1): merges dims start_dim..end_dim.
-- Dims are 1-based as everywhere in gamlua: the default keeps dim 1 (the
-- batch), [n, c, h, w] -> [n, c*h*w], like PyTorch's Flatten().
local Module = require 'gam.nn.Module'
local args = require 'gam.argcheck'

local Flatten = Module:extend('Flatten')

function Flatten:__init(start_dim, end_dim)
  self.start_dim = args.int(start_dim or 2, 'Flatten', 'start_dim')
  self.end_dim = args.int(end_dim or -1, 'Flatten', 'end_dim')
end

function Flatten:forward(x)
  args.input(x, 'Flatten')
  return x:flatten(self.start_dim, self.end_dim)
end

function Flatten:extra_repr()
  return string.format('start_dim=%d, end_dim=%d', self.start_dim, self.end_dim)
end

return Flatten
