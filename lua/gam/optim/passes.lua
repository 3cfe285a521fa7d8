-- gam.optim.passes — how the Lua optimisers call the fused passes of
-- engine/optim.c: by name, checked, and measured when the optimiser profiles
-- (the bytes a pass streams are counted from its own vector arguments); and
-- the slots of a step's scalars block, by name.
local ffi = require 'ffi'
local C = require 'gam.lib'
local tensor = require 'gam.tensor'
local util = require 'gam.optim.util'
local argcheck = require 'gam.argcheck'

local M = {}

-- The scalars block's slots (gam.h's enum, read once): a norm, or the three
-- sums {‖a‖², ⟨a,b⟩, ‖b‖²}; the non-finite check's flag and value; pass 0's loss.
M.SLOT = {norm = C.GAM_OPT_NORM, aa = C.GAM_OPT_AA, ab = C.GAM_OPT_AB, bb = C.GAM_OPT_BB,
          flag = C.GAM_OPT_FLAG, bad = C.GAM_OPT_BAD, loss = C.GAM_OPT_LOSS}
M.NSCALARS = C.GAM_OPT_NSCALARS

-- What each pass does with its arguments, by position: 'r' a vector read,
-- 'w' written, 'rw' both (streamed twice), 's' a base step's start point
-- (read: src, or the parameter itself when src is nil). Unlisted positions
-- are not vectors (the scalars block, numbers); a nil vector is not streamed.
local ACCESS = {
  gam_fill_           = {'w'},
  gam_opt_copy        = {'w', 'r'},                              -- dst, src
  gam_opt_norm_s      = {[2] = 'r', [3] = 'r'},                  -- s, g, w
  gam_opt_ascend_s    = {'rw', 'w', 'r', 'w'},                   -- θ, θ save, g, g save
  gam_opt_dot3_s      = {[2] = 'r', [3] = 'r'},                  -- s, a, b
  gam_opt_decompose_s = {'rw', 'r'},                             -- h, v
  gam_gam_pass1_s     = {[2] = 'w', [3] = 'r', [4] = 'r', [5] = 'r'},  -- s, h+, g, g0, θ0
  gam_gam_ascend_h0_s = {'w', 'r', 'r', 'r'},                    -- θ, θ0, g, g0
  gam_gam_pass2_s     = {[2] = 'rw', [3] = 'r', [4] = 'r'},      -- s, g0/h−, g, θ
  gam_gam_pass3_s     = {[2] = 'rw', [3] = 'r', [4] = 'r'},      -- s, g, h+, h−
  gam_sgd_step_s      = {'w', 'r', 'rw', 's'},                   -- θ, g, buf, src
  gam_adam_step_s     = {'w', 'r', 'rw', 'rw', 's'},             -- θ, g, m, v, src
}
local TIMES = {r = 1, w = 1, rw = 2, s = 1}

--- passes.bytes(name, ...): bytes the pass `name` streams with these
-- arguments (engine tensors, float32 vectors)
function M.bytes(name, ...)
  local access = ACCESS[name]
  if not access then argcheck.raise('gam.optim.passes: no access pattern for ' .. tostring(name)) end
  local total = 0
  for k, how in pairs(access) do
    local v = select(k, ...)
    if how == 's' and v == nil then v = (...) end
    if v ~= nil then total = total + TIMES[how] * 4 * tonumber(v.numel) end
  end
  return total
end

--- passes.call(prof, name, ...): C[name](...), checked. When prof (an
-- optimiser, or nil) has profile set, the call is also timed into
-- prof.kernel_seconds and its traffic added to prof.kernel_bytes (on a
-- device, profiling waits for the device before and after).
function M.call(prof, name, ...)
  if prof and prof.profile then
    local wait = prof._on_device
    if wait then tensor.synchronize() end
    local t0 = util.now()
    tensor.check(C[name](...))
    if wait then tensor.synchronize() end
    prof.kernel_seconds = prof.kernel_seconds + (util.now() - t0)
    prof.kernel_bytes = prof.kernel_bytes + M.bytes(name, ...)
  else
    tensor.check(C[name](...))
  end
end

-- ---- reductions read on the host (a wait on a device: for measurements, not steps) ------
local blocks = {}                                   -- one scalars block per device, kept
local host = ffi.new('double[?]', M.NSCALARS)
local function block(v)
  local dev = tonumber(v.device)
  if not blocks[dev] then blocks[dev] = tensor.keep(tensor.op(C.gam_opt_scalars, dev)) end
  return blocks[dev].t
end

--- passes.norm(v): ‖v‖ in double, v an engine float32 vector (gam_tensor *)
function M.norm(v)
  local S = block(v)
  tensor.check(C.gam_opt_norm_s(S, v, nil, 0))
  tensor.check(C.gam_opt_read(S, host))
  return host[M.SLOT.norm]
end

--- passes.dot3(a, b): ‖a‖², ⟨a,b⟩, ‖b‖² in double
function M.dot3(a, b)
  local S = block(a)
  tensor.check(C.gam_opt_dot3_s(S, a, b, 0, 0))
  tensor.check(C.gam_opt_read(S, host))
  return host[M.SLOT.aa], host[M.SLOT.ab], host[M.SLOT.bb]
end

return M
