-- optim.GSAM — surrogate-gap guided SAM (Zhuang et al.), as the released
-- code computes it. One step, ξ = 1e-12:
--
--   g   = ∇L(θ)                                      pass 0
--   e   = ρ g / (‖g‖ + ξ)        adaptive: ρ θ² g / (‖g ⊙ |θ|‖ + ξ)
--   gs  = ∇L(θ + e)                                  pass 1 (BatchNorm momentum 0)
--   cos = ⟨g, gs⟩ / (‖gs‖ ‖g‖ + ξ)
--   d   = gs − α (g − cos ‖g‖ gs / (‖gs‖ + ξ))
--   θ ← base_optimizer(θ, d)     θ restored exactly first
--
--   optim.GSAM{base = ..., model = model, rho = 0.05, alpha = 0.4, adaptive = false}
--
-- rho may be a number or a scheduler (the seed ties it to the learning rate
-- with optim.ProportionScheduler). Work buffers: θ and g (two flat vectors).
local argcheck = require 'gam.argcheck'
local Sharpness = require 'gam.optim.Sharpness'

local GSAM = Sharpness.extend('GSAM')
GSAM.nbuffers = 2
GSAM.hyper_names = {'rho', 'alpha', 'adaptive'}
GSAM.pass_names = {[0] = ' (at θ)', [1] = ' (at θ + e)'}

local OPTIONS = {'base', 'model', 'rho', 'alpha', 'adaptive', 'sync'}

function GSAM.new(opts)
  local who = 'optim.GSAM'
  argcheck.options(who, opts, OPTIONS)
  local self = setmetatable({}, GSAM)
  self.rho = argcheck.scheduled(who, 'rho', opts.rho, 0.05)
  self.alpha = argcheck.scheduled(who, 'alpha', opts.alpha, 0.4)
  Sharpness.init(self, who, opts)
  return self
end
getmetatable(GSAM).__call = function(_, opts) return GSAM.new(opts) end

function GSAM:hyper()
  return {rho = argcheck.current(self.__typename, 'rho', self.rho),
          alpha = argcheck.current(self.__typename, 'alpha', self.alpha)}
end

-- The scalars stay in the block S on the parameters' device: the perturbation
-- scales by rho / (S[norm] + ξ), and the decomposition's coefficient
-- cos ‖g‖ / (‖gs‖ + ξ) comes from S = {‖gs‖², ⟨gs,g⟩, ‖g‖²} (gam.h).
function GSAM:run(h)
  local theta, g = self.flat.t, self.flat_grad.t
  local bufs = self:_buffers()
  local theta0, g0 = bufs[1], bufs[2]
  local S = self:_scalars()
  local ad = self.adaptive and 1 or 0
  -- perturb, keeping θ and g
  self:_k('gam_opt_norm_s', S, g, self.adaptive and theta or nil,
          self:_code(0, 'gradient norm'))
  self:_check()
  self:_k('gam_opt_ascend_s', theta, theta0.t, g, g0.t, h.rho, S, ad)
  self._theta_saved = true
  self:_pass(1)
  -- decompose: S = {‖gs‖², ⟨gs,g⟩, ‖g‖²}
  self:_k('gam_opt_dot3_s', S, g, g0.t, self:_code(1, 'gradient norm'), 0)
  self:_check()
  self:_k('gam_opt_decompose_s', g, g0.t, h.alpha, S)
  return theta0
end

return GSAM
