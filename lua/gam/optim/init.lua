-- gam.optim — optimisers and schedules.
--
--   optim.SGD, optim.Adam, optim.AdamW             PyTorch's update rules
--   optim.SAM (adaptive = true: ASAM), optim.GSAM, optim.GAM
--                                                  sharpness-aware, over a model's flat arena
--   optim.CosineAnnealingLR, StepLR, MultiStepLR, LinearLR (= LinearWarmup)
--   optim.LinearScheduler, CosineScheduler, PolyScheduler, ProportionScheduler
--
-- Every optimiser phase is one or two fused engine passes over the flat
-- parameter and gradient vectors (engine/optim.c).
local schedulers = require 'gam.optim.schedulers'

local optim = {
  Optimizer = require 'gam.optim.Optimizer',
  SGD = require 'gam.optim.SGD',
  Adam = require 'gam.optim.Adam',
  AdamW = require 'gam.optim.AdamW',
  SAM = require 'gam.optim.SAM',
  GSAM = require 'gam.optim.GSAM',
  GAM = require 'gam.optim.GAM',
  schedulers = schedulers,
}
for k, v in pairs(schedulers) do optim[k] = v end

return optim
