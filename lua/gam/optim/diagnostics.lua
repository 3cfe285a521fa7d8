-- gam.optim.diagnostics — what a GAM step can report about itself, cheaply,
-- when asked (opt:diagnostics(true)); read back with opt:diagnostics():
--
--   g0_norm       ‖g0‖, the gradient at θ (plain norm, also with adaptive)
--   cos           cos(h+, h−) = ⟨h+,h−⟩ / (‖h+‖‖h−‖ + ξ), from the step's own scalars
--   update_norm   ‖d‖, the direction GAM hands to the base optimiser
--   update_ratio  ‖d‖ / ‖g0‖: GAM's update against the one plain SGD would take
--                 from the same gradient (before momentum and weight decay, which
--                 both apply alike)
--
-- Cost when on: two norm passes over the flat gradient (one vector read each,
-- next to the step's four forward/backward passes) and, on cuda, three waits
-- for the device. Off (the default), nothing.
local ffi = require 'ffi'
local C = require 'gam.lib'
local tensor = require 'gam.tensor'
local argcheck = require 'gam.argcheck'
local passes = require 'gam.optim.passes'
local XI = require('gam.optim.util').XI
local SLOT = passes.SLOT

local M = {}

-- the block's slots on the host
local host = ffi.new('double[?]', passes.NSCALARS)
local function read(S)
  tensor.check(C.gam_opt_read(S, host))
  return host
end

-- ‖g‖, through passes' own scalars block (the step's block holds the step's scalars)
local function norm(_, g) return passes.norm(g) end

--- diagnostics.access(opt, on): on = true/false switches recording; with no
-- argument returns the last recorded step's table (nil before one)
function M.access(opt, on)
  if on == nil then return opt._diag_last end
  if type(on) ~= 'boolean' then
    argcheck.fail('%s:diagnostics: expects true, false or nothing, got %s', opt.__typename, type(on))
  end
  opt._diag = on or nil
  if not on then opt._diag_last = nil end
end

--- at the start of GAM's run: g holds g0
function M.start(opt, g)
  opt._diag_cur = {g0_norm = norm(opt, g)}
end

--- after pass 3: the scalars block S holds ‖h+‖², ⟨h+,h−⟩, ‖h−‖²
function M.pass3(opt, S)
  local h = read(S)
  local a, b = math.sqrt(h[SLOT.aa]), math.sqrt(h[SLOT.bb])
  opt._diag_cur.cos = h[SLOT.ab] / (a * b + XI)
end

--- after the decomposition: g holds d
function M.finish(opt, g)
  local d = opt._diag_cur
  d.update_norm = norm(opt, g)
  d.update_ratio = d.update_norm / (d.g0_norm + XI)
  opt._diag_last, opt._diag_cur = d, nil
end

return M
