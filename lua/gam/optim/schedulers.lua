-- gam.optim.schedulers — learning-rate and value schedules.
--
-- Every scheduler has :value() (the current value), :step() (advance one
-- step, return the new value), :get_last_lr() ({value}, as PyTorch) and
-- :state_dict()/:load_state_dict(). Anything with :value() can be given where
-- an optimiser takes a learning rate or a radius; it is read at every step.
-- Given `optimizer = opt`, a scheduler also writes its value to opt.lr when
-- made and at every step, as PyTorch's schedulers do.
--
-- PyTorch's epoch schedulers, with PyTorch's (recursive, chainable) formulas:
--   CosineAnnealingLR{optimizer | base_lr, T_max, eta_min = 0}
--   StepLR{optimizer | base_lr, step_size, gamma = 0.1}
--   MultiStepLR{optimizer | base_lr, milestones = {...}, gamma = 0.1}
--   LinearLR{optimizer | base_lr, start_factor = 1/3, end_factor = 1, total_iters = 5}
--     (LinearWarmup is the same: a linear warm-up of the learning rate)
-- The seed's value schedulers (GSAM's scheduler.py), stepped per iteration:
--   LinearScheduler / CosineScheduler / PolyScheduler{T_max, max_value, min_value = 0,
--       init_value = 0, warmup_steps = 0, optimizer = nil[, poly_order = -0.5]}
--   ProportionScheduler{scheduler, max_lr, min_lr = 0, max_value, min_value = 0}:
--       (value − min_value)/(max_value − min_value) = (lr − min_lr)/(max_lr − min_lr),
--       lr read from `scheduler` (a scheduler, or an optimiser's lr) at each step.
local util = require 'gam.optim.util'
local argcheck = require 'gam.argcheck'

local M = {}

local Scheduler = {}
Scheduler.__index = Scheduler
Scheduler.is_scheduler = true

local function class(name, fields)
  local cls = setmetatable({__typename = name}, {__index = Scheduler})
  cls.__index = cls
  cls.__tostring = function(self) return string.format('optim.%s (value %g)', name, self._last) end
  getmetatable(cls).__call = function(_, opts) return cls.new(opts) end
  cls._fields = fields
  return cls
end

function Scheduler:value() return self._last end
function Scheduler:lr() return self._last end
function Scheduler:get_last_lr() return {self._last} end

-- writes the value to the attached optimiser
function Scheduler:_apply()
  if self.optimizer then self.optimizer.lr = self._last end
  return self._last
end

function Scheduler:state_dict()
  local sd = {name = self.__typename}
  for _, k in ipairs(self._fields) do sd[k] = self[k] end
  sd._last = self._last
  return sd
end

function Scheduler:load_state_dict(sd)
  if type(sd) ~= 'table' or sd.name ~= self.__typename then
    argcheck.fail('%s:load_state_dict: expected the state_dict of a %s', self.__typename,
                        self.__typename)
  end
  for _, k in ipairs(self._fields) do if sd[k] ~= nil then self[k] = sd[k] end end
  self._last = sd._last
  self:_apply()
end

-- ---- PyTorch's epoch schedulers ------------------------------------------------------------
-- the lr the recursive formulas start from: the optimiser's, or the last value
local function group_lr(self)
  local o = self.optimizer
  if o and type(o.lr) == 'number' then return o.lr end
  return self._last
end

local function epoch_init(self, who, opts)
  local o = opts.optimizer
  if o ~= nil then
    if type(o) ~= 'table' or o.lr == nil then
      argcheck.raise(who .. ': optimizer must be an optimiser (with an lr field)')
    end
    if type(o.lr) ~= 'number' then
      argcheck.raise(who .. ': the optimiser\'s lr must be a number for this scheduler to set it')
    end
    self.optimizer = o
    self.base_lr = o.lr
  else
    if opts.base_lr == nil then argcheck.raise(who .. ': give optimizer (to schedule its lr) or base_lr') end
    self.base_lr = argcheck.finite(who, 'base_lr', opts.base_lr, 0)
  end
  self.last_epoch = 0
  self._last = self.base_lr
end

local function epoch_step(self)
  self.last_epoch = self.last_epoch + 1
  self._last = self:_compute(group_lr(self))
  return self:_apply()
end

M.CosineAnnealingLR = class('CosineAnnealingLR', {'base_lr', 'last_epoch', 'T_max', 'eta_min'})
function M.CosineAnnealingLR.new(opts)
  local who = 'optim.CosineAnnealingLR'
  argcheck.options(who, opts, {'optimizer', 'base_lr', 'T_max', 'eta_min'})
  local self = setmetatable({}, M.CosineAnnealingLR)
  epoch_init(self, who, opts)
  self.T_max = argcheck.finite(who, 'T_max', opts.T_max, 1)
  self.eta_min = argcheck.finite(who, 'eta_min', opts.eta_min, 0, 0)
  self:_apply()
  return self
end
M.CosineAnnealingLR.step = epoch_step
function M.CosineAnnealingLR:_compute(lr)
  local e, T, base, eta = self.last_epoch, self.T_max, self.base_lr, self.eta_min
  if (e - 1 - T) % (2 * T) == 0 then
    return lr + (base - eta) * (1 - math.cos(math.pi / T)) / 2
  end
  return (1 + math.cos(math.pi * e / T)) / (1 + math.cos(math.pi * (e - 1) / T)) * (lr - eta) + eta
end

M.StepLR = class('StepLR', {'base_lr', 'last_epoch', 'step_size', 'gamma'})
function M.StepLR.new(opts)
  local who = 'optim.StepLR'
  argcheck.options(who, opts, {'optimizer', 'base_lr', 'step_size', 'gamma'})
  local self = setmetatable({}, M.StepLR)
  epoch_init(self, who, opts)
  self.step_size = argcheck.finite(who, 'step_size', opts.step_size, 1)
  self.gamma = argcheck.finite(who, 'gamma', opts.gamma, 0, 0.1)
  self:_apply()
  return self
end
M.StepLR.step = epoch_step
function M.StepLR:_compute(lr)
  if self.last_epoch % self.step_size ~= 0 then return lr end
  return lr * self.gamma
end

M.MultiStepLR = class('MultiStepLR', {'base_lr', 'last_epoch', 'milestones', 'gamma'})
function M.MultiStepLR.new(opts)
  local who = 'optim.MultiStepLR'
  argcheck.options(who, opts, {'optimizer', 'base_lr', 'milestones', 'gamma'})
  local self = setmetatable({}, M.MultiStepLR)
  epoch_init(self, who, opts)
  if type(opts.milestones) ~= 'table' then argcheck.raise(who .. ': milestones must be a list of epochs') end
  self.milestones = {}
  for i, m in ipairs(opts.milestones) do
    if type(m) ~= 'number' or m ~= math.floor(m) or m < 1 then
      argcheck.fail('%s: milestones[%d] must be a positive integer, got %s', who, i, tostring(m))
    end
    self.milestones[i] = m
  end
  self.gamma = argcheck.finite(who, 'gamma', opts.gamma, 0, 0.1)
  self:_apply()
  return self
end
M.MultiStepLR.step = epoch_step
function M.MultiStepLR:_compute(lr)
  local count = 0
  for _, m in ipairs(self.milestones) do if m == self.last_epoch then count = count + 1 end end
  if count == 0 then return lr end
  return lr * self.gamma ^ count
end

M.LinearLR = class('LinearLR', {'base_lr', 'last_epoch', 'start_factor', 'end_factor', 'total_iters'})
function M.LinearLR.new(opts)
  local who = 'optim.LinearLR'
  argcheck.options(who, opts, {'optimizer', 'base_lr', 'start_factor', 'end_factor', 'total_iters'})
  local self = setmetatable({}, M.LinearLR)
  epoch_init(self, who, opts)
  self.start_factor = argcheck.finite(who, 'start_factor', opts.start_factor, nil, 1 / 3)
  self.end_factor = argcheck.finite(who, 'end_factor', opts.end_factor, 0, 1)
  if self.start_factor <= 0 or self.start_factor > 1 then
    argcheck.fail('%s: start_factor must be in (0, 1], got %g', who, self.start_factor)
  end
  if self.end_factor > 1 then argcheck.fail('%s: end_factor must be in [0, 1], got %g', who, self.end_factor) end
  self.total_iters = argcheck.finite(who, 'total_iters', opts.total_iters, 1, 5)
  self._last = group_lr(self) * self.start_factor
  self:_apply()
  return self
end
M.LinearLR.step = epoch_step
function M.LinearLR:_compute(lr)
  local e, s, f = self.last_epoch, self.start_factor, self.end_factor
  if e > self.total_iters then return lr end
  return lr * (1 + (f - s) / (self.total_iters * s + (e - 1) * (f - s)))
end
M.LinearWarmup = M.LinearLR

-- ---- the seed's value schedulers -------------------------------------------------------------
local function value_init(cls, who, opts, extra)
  local allowed = {'T_max', 'max_value', 'min_value', 'init_value', 'warmup_steps', 'optimizer'}
  for _, k in ipairs(extra or {}) do allowed[#allowed + 1] = k end
  argcheck.options(who, opts, allowed)
  local self = setmetatable({}, cls)
  self.total_steps = argcheck.finite(who, 'T_max', opts.T_max, 1)
  self.max_value = argcheck.finite(who, 'max_value', opts.max_value)
  self.min_value = argcheck.finite(who, 'min_value', opts.min_value, nil, 0)
  self.init_value = argcheck.finite(who, 'init_value', opts.init_value, nil, 0)
  self.warmup_steps = argcheck.finite(who, 'warmup_steps', opts.warmup_steps, 0, 0)
  if self.warmup_steps >= self.total_steps then
    argcheck.fail('%s: warmup_steps (%g) must be less than T_max (%g)', who, self.warmup_steps,
                        self.total_steps)
  end
  if opts.optimizer ~= nil and (type(opts.optimizer) ~= 'table' or opts.optimizer.lr == nil) then
    argcheck.raise(who .. ': optimizer must be an optimiser (with an lr field)')
  end
  self.optimizer = opts.optimizer
  self.t = 0
  self._last = self.init_value     -- as the seed: the optimiser's lr is set from the first step on
  return self
end

-- warm-up from init_value to max_value, then the schedule's own function
local function value_step(self)
  local v
  if self.t < self.warmup_steps then
    v = self.init_value + (self.max_value - self.init_value) * self.t / self.warmup_steps
  elseif self.t == self.warmup_steps then
    v = self.max_value
  else
    v = self:_compute()
  end
  self.t = self.t + 1
  self._last = v
  return self:_apply()
end

local VALUE_FIELDS = {'t', 'total_steps', 'max_value', 'min_value', 'init_value', 'warmup_steps'}

M.LinearScheduler = class('LinearScheduler', VALUE_FIELDS)
function M.LinearScheduler.new(opts) return value_init(M.LinearScheduler, 'optim.LinearScheduler', opts) end
M.LinearScheduler.step = value_step
function M.LinearScheduler:_compute()
  return self.max_value + (self.min_value - self.max_value) * (self.t - self.warmup_steps)
         / (self.total_steps - self.warmup_steps)
end

M.CosineScheduler = class('CosineScheduler', VALUE_FIELDS)
function M.CosineScheduler.new(opts) return value_init(M.CosineScheduler, 'optim.CosineScheduler', opts) end
M.CosineScheduler.step = value_step
function M.CosineScheduler:_compute()
  local phase = (self.t - self.warmup_steps) / (self.total_steps - self.warmup_steps) * math.pi
  return self.min_value + (self.max_value - self.min_value) * (math.cos(phase) + 1) / 2
end

M.PolyScheduler = class('PolyScheduler', {'t', 'total_steps', 'max_value', 'min_value', 'init_value',
                                          'warmup_steps', 'poly_order'})
function M.PolyScheduler.new(opts)
  local who = 'optim.PolyScheduler'
  local self = value_init(M.PolyScheduler, who, opts, {'poly_order'})
  self.poly_order = argcheck.finite(who, 'poly_order', opts.poly_order, nil, -0.5)
  if self.poly_order > 0 then
    argcheck.fail('%s: poly_order must be <= 0 so that the value decreases, got %g', who, self.poly_order)
  end
  return self
end
M.PolyScheduler.step = value_step
function M.PolyScheduler:_compute()
  return self.min_value + (self.max_value - self.min_value) * (self.t - self.warmup_steps) ^ self.poly_order
end

M.ProportionScheduler = class('ProportionScheduler', {'t', 'max_lr', 'min_lr', 'max_value', 'min_value'})
function M.ProportionScheduler.new(opts)
  local who = 'optim.ProportionScheduler'
  argcheck.options(who, opts, {'scheduler', 'max_lr', 'min_lr', 'max_value', 'min_value'})
  local src = opts.scheduler
  if type(src) ~= 'table' or not (util.is_scheduler(src) or type(src.get_lr) == 'function') then
    argcheck.raise(who .. ': scheduler must be a scheduler (with :value()) or an optimiser (with :get_lr())')
  end
  local self = setmetatable({}, M.ProportionScheduler)
  self.source = src
  self.max_lr = argcheck.finite(who, 'max_lr', opts.max_lr)
  self.min_lr = argcheck.finite(who, 'min_lr', opts.min_lr, nil, 0)
  self.max_value = argcheck.finite(who, 'max_value', opts.max_value)
  self.min_value = argcheck.finite(who, 'min_value', opts.min_value, nil, 0)
  if not (self.max_lr > self.min_lr or (self.max_lr == self.min_lr and self.max_value == self.min_value)) then
    argcheck.fail('%s: needs max_lr > min_lr (or both equal and max_value = min_value); got max_lr %g, '
                        .. 'min_lr %g', who, self.max_lr, self.min_lr)
  end
  self.t = 0
  self:step()
  return self
end
function M.ProportionScheduler:step()
  self.t = self.t + 1
  local src = self.source
  local lr = util.is_scheduler(src) and src:value() or src:get_lr()
  if self.max_lr > self.min_lr then
    self._last = self.min_value + (self.max_value - self.min_value) * (lr - self.min_lr) / (self.max_lr - self.min_lr)
  else
    self._last = self.max_value
  end
  return self._last
end

return M
