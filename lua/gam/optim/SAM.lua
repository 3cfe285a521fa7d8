-- optim.SAM — sharpness-aware minimisation (Foret et al.); adaptive = true is
-- ASAM (Kwon et al.). One step, ξ = 1e-12:
--
--   g  = ∇L(θ)                                       pass 0
--   e  = ρ g / (‖g‖ + ξ)         ASAM: ρ θ² g / (‖g ⊙ |θ|‖ + ξ)
--   gs = ∇L(θ + e)                                   pass 1 (BatchNorm momentum 0)
--   θ ← base_optimizer(θ, gs)    θ restored exactly (copied back) first
--
--   local opt = optim.SAM{base = optim.SGD{params = model:parameters(), lr = 0.1, momentum = 0.9},
--                         model = model, rho = 0.05, adaptive = false}
--   opt:set_closure(loss_fn, x, y); local pred, loss = opt:step()
--
-- rho may be a number or a scheduler. Work buffers: one flat copy of θ.
local argcheck = require 'gam.argcheck'
local Sharpness = require 'gam.optim.Sharpness'

local SAM = Sharpness.extend('SAM')
SAM.nbuffers = 1
SAM.hyper_names = {'rho', 'adaptive'}
SAM.pass_names = {[0] = ' (at θ)', [1] = ' (at θ + e)'}

local OPTIONS = {'base', 'model', 'rho', 'adaptive', 'sync'}

function SAM.new(opts)
  local who = 'optim.SAM'
  argcheck.options(who, opts, OPTIONS)
  local self = setmetatable({}, SAM)
  self.rho = argcheck.scheduled(who, 'rho', opts.rho, 0.05)
  Sharpness.init(self, who, opts)
  return self
end
getmetatable(SAM).__call = function(_, opts) return SAM.new(opts) end

function SAM:hyper()
  return {rho = argcheck.current(self.__typename, 'rho', self.rho)}
end

-- The scalars (‖g‖ in slot 0) stay in the block S on the parameters' device;
-- gam_opt_ascend_s scales by rho / (S[norm] + ξ) itself.
function SAM:run(h)
  local theta, g = self.flat.t, self.flat_grad.t
  local theta0 = self:_buffers()[1]
  local S = self:_scalars()
  local ad = self.adaptive and 1 or 0
  -- perturb: θ0 = θ ; θ = θ + e
  self:_k('gam_opt_norm_s', S, g, self.adaptive and theta or nil,
          self:_code(0, 'gradient norm'))
  self:_check()
  self:_k('gam_opt_ascend_s', theta, theta0.t, g, nil, h.rho, S, ad)
  self._theta_saved = true
  self:_pass(1)
  self:_k('gam_opt_norm_s', S, g, nil, self:_code(1, 'gradient norm'))
  self:_check()
  return theta0
end

return SAM
