-- gam.optim.sync — data-parallel gradient averaging for the optimisers
-- (gam.dist). Every hook returns at once when the world has one rank, so a
-- single-process run pays nothing.
--
-- Base optimisers (SGD, Adam, AdamW): opt:step() averages the gradient over
-- the ranks (one all-reduce of the flat gradient) before the update, as
-- PyTorch's DistributedDataParallel does during backward.
--
-- The SAM family (SAM, GSAM, GAM) takes `sync`:
--   'final' (default): every pass uses the rank's own batch; only the final
--       direction d is averaged before the base step (the released GAM's
--       behaviour under DDP: one all-reduce per step);
--   'every_pass': each pass's gradient is averaged as soon as it is computed,
--       so N ranks with batch B step exactly as one process with batch N·B
--       (up to summation order); one all-reduce per pass.
-- In both modes BatchNorm running statistics are rank 0's, broadcast at the
-- start of each step (DDP's broadcast_buffers), and the first step checks
-- that every rank has the same parameter count and options.
local C = require 'gam.lib'

local M = {}

local MODES = {final = true, every_pass = true}

--- sync.option(who, v) -> 'final' | 'every_pass'
function M.option(who, v)
  if v == nil then return 'final' end
  if not MODES[v] then
    error(string.format("%s: sync must be 'final' or 'every_pass', got %s", who, tostring(v)), 3)
  end
  return v
end

local function multi() return C.gam_dist_size() > 1 end

local function hyper_entries(list, prefix, opt)
  for _, k in ipairs(opt.hyper_names or {}) do
    local v = opt[k]
    if k == 'lr' and opt.get_lr then v = opt:get_lr() end
    if type(v) == 'table' and v.value then v = v:value() end       -- a scheduler
    if type(v) == 'table' then v = table.concat(v, ',') end
    list[#list + 1] = {prefix .. k, v}
  end
end

-- every rank must agree on the parameter count and the options (once)
local function check_once(opt, entries)
  if rawget(opt, '_sync_checked') then return end
  require('gam.dist').check_agree('optim.' .. opt.__typename, entries)
  rawset(opt, '_sync_checked', true)
end

--- sync.base_step(opt): Optimizer:step, before the update
function M.base_step(opt)
  if not multi() then return end
  local entries = {{'the parameter count', opt._numel}}
  hyper_entries(entries, '', opt)
  check_once(opt, entries)
  local dist = require 'gam.dist'
  local _, grad = opt:_arena()
  if grad then
    dist.all_reduce(grad, 'mean')
  else
    for _, p in ipairs(opt.params) do
      if p.t.grad ~= nil then dist.all_reduce(p.grad, 'mean') end
    end
  end
end

--- sync.step_begin(opt): Sharpness:step, before pass 0
function M.step_begin(opt)
  if not multi() then return end
  local entries = {{'the parameter count', opt.flat:numel()}, {'sync', opt.sync},
                   {'base', opt.base.__typename}}
  hyper_entries(entries, '', opt)
  hyper_entries(entries, 'base.', opt.base)
  check_once(opt, entries)
  require('gam.dist').broadcast_buffers(opt.model, 0)
end

--- sync.after_pass(opt, k): Sharpness:_pass, once pass k's gradient is in flat_grad
function M.after_pass(opt, _k)
  if opt.sync == 'every_pass' and multi() then require('gam.dist').all_reduce(opt.flat_grad, 'mean') end
end

--- sync.before_update(opt): Sharpness:step, when flat_grad holds d, before the base step
function M.before_update(opt)
  if opt.sync == 'final' and multi() then require('gam.dist').all_reduce(opt.flat_grad, 'mean') end
end

return M
