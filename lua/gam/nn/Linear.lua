-- nn.Linear(in_features, out_features, {bias = true}): y = x W^T + b
--   x [n, in] -> y [n, out]; weight [out, in], bias [out].
-- Initialisation (PyTorch's): weight kaiming_uniform_(a = sqrt(5)), i.e.
-- U(-1/sqrt(in), 1/sqrt(in)); bias U(-1/sqrt(in), 1/sqrt(in)).
local tensor = require 'gam.tensor'
local F = require 'gam.functional'
local Module = require 'gam.nn.Module'
local init = require 'gam.nn.weight_init'
local args = require 'gam.argcheck'

local Linear = Module:extend('Linear')

function Linear:__init(in_features, out_features, o)
  args.int(in_features, 'Linear', 'in_features', 1)
  args.int(out_features, 'Linear', 'out_features', 1)
  o = args.opts(o, 'Linear', {'bias'})
  self.in_features, self.out_features = in_features, out_features
  self:register_parameter('weight', tensor.empty({out_features, in_features}))
  if args.bool(o.bias, true, 'Linear', 'bias') then
    self:register_parameter('bias', tensor.empty({out_features}))
  end
  self:reset_parameters()
end

function Linear:reset_parameters()
  init.kaiming_uniform_(self.weight, {a = math.sqrt(5)})
  if self.bias then
    local bound = 1 / math.sqrt(self.in_features)
    init.uniform_(self.bias, -bound, bound)
  end
end

function Linear:forward(x)
  return F.linear(x, self.weight, self.bias)
end

function Linear:extra_repr()
  return string.format('in_features=%d, out_features=%d, bias=%s', self.in_features, self.out_features,
                       Module.pyval(self.bias ~= nil))
end

return Linear
