-- nn.BatchNorm2d(num_features, {eps = 1e-5, momentum = 0.1, affine = true})
--   x [n, c, h, w] -> y = (x - mean) / sqrt(var + eps) * weight + bias, per channel.
-- Training: batch mean and biased variance normalise; the running statistics
-- move as running = (1 - momentum) running + momentum * batch (unbiased
-- variance), exactly as PyTorch. Evaluation: running statistics normalise.
-- `momentum` is a plain field: optimisers set it to 0 for extra passes (the
-- running statistics then stay put) and restore it.
-- Buffers: running_mean (zeros), running_var (ones). Parameters (affine):
-- weight (ones), bias (zeros). No num_batches_tracked counter is kept.
local tensor = require 'gam.tensor'
local F = require 'gam.functional'
local Module = require 'gam.nn.Module'
local args = require 'gam.argcheck'

local BatchNorm2d = Module:extend('BatchNorm2d')

function BatchNorm2d:__init(num_features, o)
  args.int(num_features, 'BatchNorm2d', 'num_features', 1)
  o = args.opts(o, 'BatchNorm2d', {'eps', 'momentum', 'affine'})
  self.num_features = num_features
  self.eps = args.number(o.eps or 1e-5, 'BatchNorm2d', 'eps', 0)
  self.momentum = args.number(o.momentum == nil and 0.1 or o.momentum, 'BatchNorm2d', 'momentum', 0, 1)
  self.affine = args.bool(o.affine, true, 'BatchNorm2d', 'affine')
  if self.affine then
    self:register_parameter('weight', tensor.ones({num_features}))
    self:register_parameter('bias', tensor.zeros({num_features}))
  end
  self:register_buffer('running_mean', tensor.zeros({num_features}))
  self:register_buffer('running_var', tensor.ones({num_features}))
end

--- running statistics back to mean 0, variance 1
function BatchNorm2d:reset_running_stats()
  self.running_mean:fill_(0)
  self.running_var:fill_(1)
end

function BatchNorm2d:forward(x)
  args.input(x, 'BatchNorm2d', 4)
  if x:size(2) ~= self.num_features then
    args.fail('BatchNorm2d: input has %d channels (shape [%s]), the layer expects %d', x:size(2),
                        table.concat(x:shape(), ', '), self.num_features)
  end
  if type(self.momentum) ~= 'number' then
    args.raise('BatchNorm2d: momentum must be a number, got ' .. tostring(self.momentum))
  end
  return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, self.training,
                      self.momentum, self.eps)
end

function BatchNorm2d:extra_repr()
  return string.format('%d, eps=%s, momentum=%s, affine=%s, track_running_stats=True', self.num_features,
                       Module.pyfloat(self.eps), Module.pyfloat(self.momentum), Module.pyval(self.affine))
end

return BatchNorm2d
