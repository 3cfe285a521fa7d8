-- train_tensorboard.lua — what scripts/train_cifar.lua writes to TensorBoard
-- (gam.log.tensorboard), loaded relative to it. Tags:
--
--   every step (x = global step, (epoch - 1) * steps_per_epoch + step):
--     train/loss, train/acc        the batch's mean loss and accuracy
--     gam/g0_norm, gam/cos_hplus_hminus, gam/update_ratio   with --opt gam (optim/diagnostics.lua)
--   every `every` steps and the first:  lr
--   every epoch (x = epoch):
--     epoch/train_loss, epoch/train_acc, epoch/lr     as the row of metrics.csv
--     <set>/loss, <set>/acc        each evaluated set: test, and val when there is one
--     radius/grad_rho, radius/grad_norm_rho (GAM) or radius/rho (SAM, ASAM, GSAM): those in effect
--     weights/<name>               a histogram of each parameter tensor (model:named_parameters())
--   once, at step 0:  flags (a markdown table of the run's flags)
local gam = require 'gam'

local M = {}
M.__index = M

--- opens the writer for the run of model and opt, or returns nil when args.tensorboard is 'off'
-- ('on': the folder args.out; anything else: that folder)
function M.open(args, opt, model)
  local where = args.tensorboard
  if where == 'off' then return nil end
  local dir = where == 'on' and args.out or where
  local self = setmetatable({tb = gam.log.tensorboard(dir), every = args['tensorboard-every'], opt = opt,
                             model = model}, M)
  if opt and opt.diagnostics then opt:diagnostics(true) end
  local names = {}
  for k in pairs(args) do names[#names + 1] = k end
  table.sort(names)
  local rows = {'| flag | value |', '|---|---|'}
  for _, k in ipairs(names) do
    local v = args[k]
    if type(v) == 'table' then v = table.concat(v, ',') end
    rows[#rows + 1] = string.format('| --%s | %s |', k, tostring(v))
  end
  self.tb:text('flags', table.concat(rows, '\n'), 0)
  return self
end

--- one training step: its global step, the batch's loss and accuracy, the learning rate
function M:step(global, loss, acc, lr)
  local tb = self.tb
  tb:scalar('train/loss', loss, global)
  tb:scalar('train/acc', acc, global)
  if global == 1 or global % self.every == 0 then tb:scalar('lr', lr, global) end
  local d = self.opt and self.opt.diagnostics and self.opt:diagnostics()
  if d then
    tb:scalar('gam/g0_norm', d.g0_norm, global)
    tb:scalar('gam/cos_hplus_hminus', d.cos, global)
    tb:scalar('gam/update_ratio', d.update_ratio, global)
  end
end

--- one epoch: {train_loss =, train_acc =, lr =, evals = {test = {loss, acc}, ...}, radii = {name = value}}
function M:epoch(epoch, e)
  local tb = self.tb
  tb:scalar('epoch/train_loss', e.train_loss, epoch)
  tb:scalar('epoch/train_acc', e.train_acc, epoch)
  tb:scalar('epoch/lr', e.lr, epoch)
  local sets = {}
  for name in pairs(e.evals) do sets[#sets + 1] = name end
  table.sort(sets)
  for _, name in ipairs(sets) do
    tb:scalar(name .. '/loss', e.evals[name][1], epoch)
    tb:scalar(name .. '/acc', e.evals[name][2], epoch)
  end
  for name, v in pairs(e.radii) do tb:scalar('radius/' .. name, v, epoch) end
  for _, p in ipairs(self.model:named_parameters()) do tb:histogram('weights/' .. p.name, p.tensor, epoch) end
end

function M:close() self.tb:close() end

return M
