-- gam.optim.util — what the optimisers and schedulers share besides argument
-- checks (those are gam.argcheck's): ξ, scheduled values and a wall clock.
local argcheck = require 'gam.argcheck'

local M = {}

M.XI = 1e-12   -- ξ: keeps every normalisation finite, as in the reference code (engine: GAM_OPT_XI)

M.is_finite = argcheck.is_finite

--- a scheduler is any table with a :value() method
M.is_scheduler = argcheck.is_scheduler

--- M.value(v): the current value of a number or a scheduler
function M.value(v)
  if type(v) == 'number' then return v end
  return v:value()
end

--- M.now(): seconds from a monotonic clock (gam.clock)
M.now = require('gam.sys').clock

return M
