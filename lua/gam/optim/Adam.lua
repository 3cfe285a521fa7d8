-- optim.Adam — Adam with PyTorch's update rule (L2 weight decay added to the
-- gradient, bias correction), t counting steps from 1:
--
--   g = g + weight_decay θ
--   m = β1 m + (1 − β1) g ;   v = β2 v + (1 − β2) g²
--   θ = θ − lr / (1 − β1^t) · m / (√v / √(1 − β2^t) + eps)
--
--   local opt = optim.Adam{params = model:parameters(), lr = 1e-3, betas = {0.9, 0.999}}
local passes = require 'gam.optim.passes'
local Optimizer = require 'gam.optim.Optimizer'
local argcheck = require 'gam.argcheck'

local Adam = Optimizer.extend('Adam')
Adam.hyper_names = {'lr', 'betas', 'eps', 'weight_decay'}
Adam.state_names = {'exp_avg', 'exp_avg_sq'}
function Adam.state_names_for() return {'exp_avg', 'exp_avg_sq'} end
Adam.default_lr = 1e-3
Adam.decoupled = false
Adam.default_weight_decay = 0

local OPTIONS = {'params', 'lr', 'betas', 'eps', 'weight_decay', 'amsgrad'}

--- shared by Adam and AdamW
function Adam.construct(cls, who, opts)
  argcheck.options(who, opts, OPTIONS)
  if opts.amsgrad then argcheck.raise(who .. ': amsgrad is not supported') end
  local self = setmetatable({}, cls)
  Optimizer.init(self, who, opts)
  local betas = opts.betas or {0.9, 0.999}
  if type(betas) ~= 'table' or #betas ~= 2 then
    argcheck.raise(who .. ': betas must be a pair {beta1, beta2}')
  end
  for i = 1, 2 do
    local b = betas[i]
    if type(b) ~= 'number' or not (b >= 0 and b < 1) then
      argcheck.fail('%s: betas[%d] must be in [0, 1), got %s', who, i, tostring(b))
    end
  end
  self.betas = {betas[1], betas[2]}
  self.eps = argcheck.finite(who, 'eps', opts.eps, 0, 1e-8)
  self.weight_decay = argcheck.finite(who, 'weight_decay', opts.weight_decay, 0, cls.default_weight_decay)
  return self
end

function Adam.new(opts) return Adam.construct(Adam, 'optim.Adam', opts) end
getmetatable(Adam).__call = function(_, opts) return Adam.new(opts) end

function Adam:kernel(param, grad, bufs, src, lr, step, guard, prof)
  passes.call(prof, 'gam_adam_step_s', param.t, grad.t, bufs[1].t, bufs[2].t, src and src.t or nil, lr,
              self.betas[1], self.betas[2], self.eps, self.weight_decay,
              self.decoupled and 1 or 0, step, guard and guard.t or nil)
end

return Adam
