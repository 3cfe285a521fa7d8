-- nn.Dropout(p = 0.5): in training, zeroes each element with probability p
-- and scales the rest by 1/(1-p); in evaluation, the identity. Draws from
-- gam's seeded generator (gam.manual_seed).
local F = require 'gam.functional'
local Module = require 'gam.nn.Module'
local args = require 'gam.argcheck'

local Dropout = Module:extend('Dropout')

function Dropout:__init(p)
  self.p = args.number(p == nil and 0.5 or p, 'Dropout', 'p', 0, 1)
end

function Dropout:forward(x)
  if not self.training or self.p == 0 then return x end
  if self.p == 1 then return x * 0 end   -- everything dropped (PyTorch allows p = 1)
  return F.dropout(x, self.p, true)
end

function Dropout:extra_repr()
  return string.format('p=%s, inplace=False', Module.pyfloat(self.p))
end

return Dropout
