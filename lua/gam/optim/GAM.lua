-- optim.GAM — Gradient norm Aware Minimization (Zhang et al., CVPR 2023),
-- accelerated variant (Algorithm 2), as the released code computes it.
-- One step, ρ′ = grad_rho, ρ = grad_norm_rho, ξ = 1e-12:
--
--   g0 = ∇L(θ)                                   pass 0 (moves BatchNorm running stats)
--   θ1 = θ + ρ′ g0/(‖g0‖+ξ);       g1 = ∇L(θ1)   pass 1 (passes 1-3: BatchNorm momentum 0)
--   h0 = g1 − g0
--   θ2 = θ + ρ h0/(‖h0‖+ξ);        g2 = ∇L(θ2)   pass 2
--   θ3 = θ2 + ρ′ g2/(‖g2‖+ξ);      g3 = ∇L(θ3)   pass 3
--   h+ = α g1 + (1−α) g3
--   h− = g0 + (1−β) g2          mode "reference" (default): the released code
--   h− = β g0 + (1−β) g2        mode "paper": Algorithm 2 as printed
--   cos = ⟨h+,h−⟩ / (‖h+‖‖h−‖+ξ)
--   d  = h+ − γ (h− − cos ‖h−‖ h+/(‖h+‖+ξ))
--   θ ← base_optimizer(θ, d)     θ restored exactly (copied back) first
--
-- adaptive = true scales each perturbation by the square of the weights it
-- starts from (θ for θ1 and θ2, θ2 for θ3) and measures the norms setting
-- the radii as ‖g ⊙ |weights|‖, as the released code does.
--
--   optim.GAM{base = optim.SGD{...}, model = model, grad_rho = 0.03, grad_norm_rho = 0.2,
--             alpha = 0.1, beta = 0.1, gamma = 0.05, adaptive = false, mode = 'reference'}
--
-- Radii may be numbers or schedulers. Work buffers (besides the gradient):
-- θ, g0 (becoming h− after pass 2) and h+: three flat vectors, where the
-- released PyTorch code keeps six per parameter.
local Sharpness = require 'gam.optim.Sharpness'
local argcheck = require 'gam.argcheck'
local diag = require 'gam.optim.diagnostics'

local GAM = Sharpness.extend('GAM')
GAM.nbuffers = 3
GAM.hyper_names = {'grad_rho', 'grad_norm_rho', 'alpha', 'beta', 'gamma', 'adaptive', 'mode'}
GAM.pass_names = {[0] = ' (at θ)', [1] = ' (at θ + ρ′ĝ0)', [2] = ' (at θ + ρĥ0)', [3] = ' (at θ2 + ρ′ĝ2)'}

local OPTIONS = {'base', 'model', 'grad_rho', 'grad_norm_rho', 'alpha', 'beta', 'gamma', 'adaptive', 'mode', 'variant',
                 'sync'}

function GAM.new(opts)
  local who = 'optim.GAM'
  -- variant = 'original': the paper's Algorithm 1, with Hessian-vector products (GAMOriginal.lua)
  local variant = type(opts) == 'table' and opts.variant or 'accelerated'
  if variant == 'original' then return require('gam.optim.GAMOriginal').new(opts) end
  if variant ~= 'accelerated' then
    argcheck.fail("%s: variant must be 'accelerated' or 'original', got %s", who, tostring(variant))
  end
  argcheck.options(who, opts, OPTIONS)
  local self = setmetatable({}, GAM)
  self.grad_rho = argcheck.scheduled(who, 'grad_rho', opts.grad_rho, 0.03)
  self.grad_norm_rho = argcheck.scheduled(who, 'grad_norm_rho', opts.grad_norm_rho, 0.2)
  self.alpha = argcheck.scheduled(who, 'alpha', opts.alpha, 0.1)
  self.beta = argcheck.scheduled(who, 'beta', opts.beta, 0.1)
  self.gamma = argcheck.scheduled(who, 'gamma', opts.gamma, 0.05)
  self.mode = opts.mode or 'reference'
  if self.mode ~= 'reference' and self.mode ~= 'paper' then
    argcheck.fail("%s: mode must be 'reference' or 'paper', got %s", who, tostring(opts.mode))
  end
  Sharpness.init(self, who, opts)
  return self
end
getmetatable(GAM).__call = function(_, opts) return GAM.new(opts) end

function GAM:hyper()
  local h = {}
  for _, k in ipairs {'grad_rho', 'grad_norm_rho', 'alpha', 'beta', 'gamma'} do
    h[k] = argcheck.current(self.__typename, k, self[k])
  end
  return h
end

--- opt:diagnostics(true) records, each later step, ‖g0‖, cos(h+, h−) and ‖d‖/‖g0‖;
-- opt:diagnostics() returns the last step's {g0_norm, cos, update_norm, update_ratio}
-- (gam/optim/diagnostics.lua; off by default).
function GAM:diagnostics(on) return diag.access(self, on) end

-- Every scalar stays in the block S on the parameters' device (gam.h): each
-- norm lands in S[norm] and the next pass scales by radius / (S[norm] + ξ) itself;
-- pass 3 leaves S = {‖h+‖², ⟨h+,h−⟩, ‖h−‖²}, from which the decomposition
-- takes c = cos ‖h−‖ / (‖h+‖ + ξ), cos = ⟨h+,h−⟩ / (‖h+‖ ‖h−‖ + ξ).
function GAM:run(h)
  local theta, g = self.flat.t, self.flat_grad.t
  local bufs = self:_buffers()
  local theta0, g0, hplus = bufs[1], bufs[2], bufs[3]   -- g0's buffer holds h− after pass 2
  local S = self:_scalars()
  local ad, adaptive = self.adaptive and 1 or 0, self.adaptive
  if self._diag then diag.start(self, g) end
  -- θ1 = θ + ρ′ g0/‖g0‖, keeping θ and g0
  self:_k('gam_opt_norm_s', S, g, adaptive and theta or nil,
          self:_code(0, 'gradient norm'))
  self:_check()
  self:_k('gam_opt_ascend_s', theta, theta0.t, g, g0.t, h.grad_rho, S, ad)
  self._theta_saved = true
  self:_pass(1)
  -- h+ = α g1 ; θ2 = θ + ρ h0/‖h0‖ with h0 = g1 − g0
  self:_k('gam_gam_pass1_s', S, hplus.t, g, g0.t, adaptive and theta0.t or nil, h.alpha, ad,
          self:_code(1, 'norm of g1 − g0'))
  self:_check()
  self:_k('gam_gam_ascend_h0_s', theta, theta0.t, g, g0.t, h.grad_norm_rho, S, ad)
  self:_pass(2)
  -- h− = c0 g0 + (1−β) g2 (in g0's buffer) ; θ3 = θ2 + ρ′ g2/‖g2‖
  local c0 = self.mode == 'paper' and h.beta or 1
  self:_k('gam_gam_pass2_s', S, g0.t, g, adaptive and theta or nil, c0, 1 - h.beta, ad,
          self:_code(2, 'gradient norm'))
  self:_check()
  self:_k('gam_opt_ascend_s', theta, nil, g, nil, h.grad_rho, S, ad)
  self:_pass(3)
  -- g = h+ = h+ + (1−α) g3 ; S = {‖h+‖², ⟨h+,h−⟩, ‖h−‖²} ; decompose
  local hminus = g0
  self:_k('gam_gam_pass3_s', S, g, hplus.t, hminus.t, 1 - h.alpha, self:_code(3, 'norm of h+'),
          self:_code(3, 'norm of h−'))
  self:_check()
  if self._diag then diag.pass3(self, S) end
  self:_k('gam_opt_decompose_s', g, hminus.t, h.gamma, S)
  if self._diag then diag.finish(self, g) end
  return theta0
end

return GAM
