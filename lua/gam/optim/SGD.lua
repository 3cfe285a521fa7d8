-- optim.SGD — stochastic gradient descent with PyTorch's update rule:
--
--   d = g + weight_decay θ
--   momentum > 0:  buf = d on the first step, then momentum buf + (1 − dampening) d
--                  d = nesterov and d + momentum buf or buf
--   θ = θ − lr d
--
--   local opt = optim.SGD{params = model:parameters(), lr = 0.1, momentum = 0.9,
--                         weight_decay = 5e-4, nesterov = false}
-- lr may be a number or a scheduler (its value is read at every step).
local passes = require 'gam.optim.passes'
local Optimizer = require 'gam.optim.Optimizer'
local argcheck = require 'gam.argcheck'

local SGD = Optimizer.extend('SGD')
SGD.hyper_names = {'lr', 'momentum', 'dampening', 'weight_decay', 'nesterov'}

local OPTIONS = {'params', 'lr', 'momentum', 'dampening', 'weight_decay', 'nesterov'}

function SGD.new(opts)
  local who = 'optim.SGD'
  argcheck.options(who, opts, OPTIONS)
  local self = setmetatable({}, SGD)
  Optimizer.init(self, who, opts)
  self.momentum = argcheck.finite(who, 'momentum', opts.momentum, 0, 0)
  self.dampening = argcheck.finite(who, 'dampening', opts.dampening, nil, 0)
  self.weight_decay = argcheck.finite(who, 'weight_decay', opts.weight_decay, 0, 0)
  self.nesterov = argcheck.bool(opts.nesterov, false, who, 'nesterov')
  if self.nesterov and (self.momentum <= 0 or self.dampening ~= 0) then
    argcheck.raise(who .. ': nesterov momentum needs momentum > 0 and dampening = 0')
  end
  self.state_names = SGD.state_names_for(self)
  return self
end
getmetatable(SGD).__call = function(_, opts) return SGD.new(opts) end

--- the state kinds: a momentum buffer only with momentum
function SGD.state_names_for(hyper)
  return hyper.momentum ~= 0 and {'momentum_buffer'} or {}
end

function SGD:kernel(param, grad, bufs, src, lr, step, guard, prof)
  passes.call(prof, 'gam_sgd_step_s', param.t, grad.t, bufs[1] and bufs[1].t or nil, src and src.t or nil, lr,
              self.momentum, self.dampening, self.weight_decay, self.nesterov and 1 or 0,
              step == 1 and 1 or 0, guard and guard.t or nil)
end

return SGD
