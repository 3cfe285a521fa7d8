-- gam.optim.Sharpness — what SAM, GSAM and GAM share: the model's flat
-- vectors, the loss closure, forward/backward passes in scopes, BatchNorm
-- momentum, flat work buffers, the non-finite guard and timing.
--
-- A step runs the closure several times ("passes"). Pass 0 is an ordinary
-- forward/backward at θ: its predictions and loss are what step() returns,
-- and only it moves BatchNorm running statistics; later passes run with the
-- momentum field of every module that has one set to 0, restored after.
-- The optimiser zeroes the flat gradient before every pass. Every pass runs
-- inside gam.scope, so its intermediates are freed when it ends.
--
-- If a pass gives a non-finite loss or gradient norm, the step raises an
-- error naming the pass and puts θ back exactly as it was (the base
-- optimiser's state is untouched: its update is the last thing a step does).
-- BatchNorm running statistics moved by pass 0 are not rolled back.
--
-- Devices. The same code drives both: the fused passes (engine/optim.c, on
-- cuda kernels/optim.cu) keep the step's scalars (norms, dot products, the
-- non-finite flag, pass 0's loss) in a small block on the parameters' device
-- and read their coefficients from it, so on a GPU a whole step is queued
-- without waiting for the device. The non-finite checks differ in WHEN they
-- are read, not in what they decide: on the cpu each check is read at once
-- (the step stops at the first failing pass, as before); on cuda the kernels
-- record the first failure in the block's flag, the base update is guarded by
-- that flag (with it set it only restores θ, leaving the base state alone),
-- and the block is read once, at the end of the step (the only wait of a GPU
-- step, which also fetches pass 0's loss). A failing GPU step thus runs its
-- remaining passes on garbage before raising the same error; the parameters
-- and the base state end exactly as on the cpu. A closure that returns its
-- loss as a number (or as a cpu tensor) is checked on the host at once.
--
-- A subclass defines:
--   Cls.nbuffers                       flat work buffers it keeps (besides the gradient)
--   Cls.run(self, pass, hyper)         the step between pass 0 and the base update;
--                                      returns the vector the base step starts from
local ffi = require 'ffi'
local C = require 'gam.lib'
local tensor = require 'gam.tensor'
local util = require 'gam.optim.util'
local passes = require 'gam.optim.passes'
local argcheck = require 'gam.argcheck'
local SLOT = passes.SLOT
local sync = require 'gam.optim.sync'

local Sharpness = {}
Sharpness.__index = Sharpness

-- non-finite checks: code = 1 + 8 pass + (index of what) - 1
local WHAT = {'loss', 'gradient norm', 'norm of g1 − g0', 'norm of h+', 'norm of h−'}
local WHAT_INDEX = {}
for k, w in ipairs(WHAT) do WHAT_INDEX[w] = k end

-- opt.lr reads and writes the base optimiser's lr, so that an lr scheduler
-- can be attached to the sharpness-aware optimiser itself
function Sharpness.extend(name)
  local cls = setmetatable({__typename = name}, {__index = Sharpness})
  cls.__index = function(self, k)
    if k == 'lr' then return rawget(self, 'base') and self.base.lr end
    return cls[k]
  end
  cls.__newindex = function(self, k, v)
    if k == 'lr' and rawget(self, 'base') then self.base.lr = v else rawset(self, k, v) end
  end
  cls.__tostring = function(self) return self:repr() end
  return cls
end

--- opt:get_lr(): the base optimiser's learning rate now
function Sharpness:get_lr() return self.base:get_lr() end

--- common construction: base, model, adaptive
function Sharpness.init(self, who, opts)
  local base, model = opts.base, opts.model
  if base == nil then
    argcheck.raise(who .. ': base is required (the base optimiser, e.g. optim.SGD{params = model:parameters(), ...})')
  end
  if type(base) ~= 'table' or not base.is_base_optimizer then
    argcheck.raise(who .. ': base must be an optim.SGD, optim.Adam or optim.AdamW')
  end
  if model == nil then argcheck.raise(who .. ': model is required (the nn module being trained)') end
  if type(model) ~= 'table' or type(model.flat_parameters) ~= 'function' then
    argcheck.raise(who .. ': model must be an nn module (with flat_parameters())')
  end
  self.base, self.model = base, model
  self.adaptive = argcheck.bool(opts.adaptive, false, who, 'adaptive')
  self.sync = sync.option(who, opts.sync)   -- data-parallel semantics (gam.optim.sync)
  self.flat, self.flat_grad = model:flat_parameters()
  local bflat = base:_arena()
  if not (bflat and bflat.t.storage == self.flat.t.storage and bflat.t.offset == self.flat.t.offset
          and bflat:numel() == self.flat:numel()) then
    argcheck.raise(who .. ': base must optimise exactly the model\'s parameters (model:parameters(), in order)')
  end
  self.profile = false        -- true: time the vector work into kernel_seconds / kernel_bytes
  self.kernel_seconds, self.kernel_bytes = 0, 0
  self._host = ffi.new('double[?]', passes.NSCALARS)   -- the block read back, by SLOT
  return self
end

-- the work buffers, allocated on the first step, on the parameters' device
function Sharpness:_buffers()
  if not self._bufs then
    local n = self.flat:numel()
    local b = {}
    for k = 1, self.nbuffers do b[k] = tensor.keep(tensor.empty({n}, {device = self.flat:device()})) end
    self._bufs = b
  end
  return self._bufs
end

-- the step's scalars block (engine tensor), on the parameters' device
function Sharpness:_scalars()
  if not self._S then
    local dev = tensor.device_arg(self.flat:device(), self.__typename)
    self._S = tensor.keep(tensor.op(C.gam_opt_scalars, dev))
  end
  return self._S.t
end

--- self:_code(k, what): the check code of a non-finite `what` in pass k
function Sharpness:_code(k, what) return 1 + 8 * k + WHAT_INDEX[what] - 1 end

-- raises the error of a failed check (host: the block read, for a target check)
function Sharpness:_fail(code, value, host)
  if code == C.GAM_OPT_CODE_TARGET then  -- a cross-entropy target, checked on the device
    error(string.format('cross_entropy: target %d of sample %d is outside the classes [0, %d) (in a %s step; '
                        .. 'the parameters are left as before the step)', value, host[C.GAM_OPT_POS] + 1,
                        host[C.GAM_OPT_HI], self.__typename), 0)
  end
  local k, what = math.floor((code - 1) / 8), WHAT[(code - 1) % 8 + 1]
  error(string.format('%s: pass %d%s gave a non-finite %s (%s); the parameters are left as before the step',
                      self.__typename, k, self.pass_names and self.pass_names[k] or '', what, tostring(value)), 0)
end

--- self:_check(): on the cpu, raises at once when a check of the block failed;
-- on cuda nothing (the block is read at the end of the step)
function Sharpness:_check()
  if self._on_device then return end
  local host = self._host
  tensor.check(C.gam_opt_read(self:_scalars(), host))
  if host[SLOT.flag] ~= 0 then self:_fail(host[SLOT.flag], host[SLOT.bad], host) end
end

--- opt:state_bytes(): bytes of the work buffers and the base optimiser's state
function Sharpness:state_bytes()
  local own = self._bufs and #self._bufs * 4 * self.flat:numel() or 0
  return own + self.base:state_bytes()
end

--- opt:zero_grad(): zeroes the model's flat gradient
function Sharpness:zero_grad() self.flat_grad:fill_(0) end

--- opt:set_closure(loss_fn, inputs, targets): later step() calls run
-- pred = model(inputs); loss = loss_fn(pred, targets); loss:backward()
function Sharpness:set_closure(loss_fn, inputs, targets)
  if type(loss_fn) ~= 'function' and not (type(loss_fn) == 'table' and getmetatable(loss_fn)
                                          and getmetatable(loss_fn).__call) then
    argcheck.raise(self.__typename .. ':set_closure: loss_fn must be a function(pred, targets)')
  end
  local model = self.model
  self._closure = function()
    local pred = model(inputs)
    local loss = loss_fn(pred, targets)
    if not tensor.is_tensor(loss) then
      error(self.__typename .. ': loss_fn must return a scalar tensor, got ' .. type(loss), 0)
    end
    loss:backward()
    return pred, loss
  end
end

-- ---- timing of the vector work ------------------------------------------------------
--- self:_k(name, ...): calls the engine pass C[name](...), checked; when
-- profiling, timed and its traffic counted from its vectors (gam.optim.passes)
function Sharpness:_k(name, ...) passes.call(self, name, ...) end

-- ---- passes ---------------------------------------------------------------------------
local function loss_number(loss)
  if type(loss) == 'number' then return loss end
  if tensor.is_tensor(loss) then return loss:item() end
  return nil
end

--- self:_pass(k): zero the gradient, run the closure in a scope; returns the
-- detached prediction (pass 0 only) and the loss as a number (nil when it is
-- a cuda tensor: then it is checked on the device, and pass 0's is kept in
-- the scalars block)
function Sharpness:_pass(k)
  self:_k('gam_fill_', self.flat_grad.t, 0)
  local closure = self._step_closure
  local on_device = self._on_device
  local pred, loss = tensor.scope(function()
    local p, l = tensor.enable_grad(closure)
    if on_device and tensor.is_tensor(l) and l:device() ~= 'cpu' then
      tensor.check(C.gam_opt_check_loss(self:_scalars(), tensor.T(l, self.__typename, 'loss'),
                                        self:_code(k, 'loss'), k == 0 and 1 or 0))
      if k == 0 and tensor.is_tensor(p) then return p:detach(), nil end
      return nil, nil
    end
    local v = loss_number(l)
    if v == nil then
      error(string.format('%s: pass %d: the closure must return (pred, loss) with loss a number or a '
                          .. 'scalar tensor, got %s', self.__typename, k, type(l)), 0)
    end
    if k == 0 and tensor.is_tensor(p) then return p:detach(), v end
    return nil, v
  end)
  sync.after_pass(self, k)
  if loss ~= nil and not util.is_finite(loss) then
    error(string.format('%s: pass %d%s gave a non-finite loss (%s); the parameters are left as before the step',
                        self.__typename, k, self.pass_names and self.pass_names[k] or '', tostring(loss)), 0)
  end
  return pred, loss
end

-- momentum of every module with one -> 0; returns the saved values
local function freeze_running_stats(model)
  local saved = {}
  local mods = model.modules and model:modules() or {model}
  for _, m in ipairs(mods) do
    if type(m) == 'table' and type(rawget(m, 'momentum')) == 'number' then
      saved[#saved + 1] = {m, m.momentum}
      m.momentum = 0
    end
  end
  return saved
end

local function restore_running_stats(saved)
  for _, e in ipairs(saved) do e[1].momentum = e[2] end
end

--- opt:step([closure]) -> pred, loss: one step. Without closure, the one given to
-- set_closure. A closure runs forward and backward itself and returns
-- (pred, loss); the optimiser zeroes the gradient before each call.
-- loss is returned as a number (pass 0's loss), pred as a detached tensor.
function Sharpness:step(closure)
  if closure ~= nil and type(closure) ~= 'function' then
    argcheck.raise(self.__typename .. ':step: closure must be a function returning (pred, loss), got ' .. type(closure))
  end
  closure = closure or self._closure
  if not closure then
    argcheck.raise(self.__typename .. ':step: no closure; call opt:set_closure(loss_fn, inputs, targets) first')
  end
  local hyper = self:hyper()
  self._step_closure = closure
  self._theta_saved = false
  self._on_device = self.flat:device() ~= 'cpu'
  local S = self:_scalars()
  tensor.check(C.gam_opt_clear(S))
  sync.step_begin(self)
  -- on a device, cross-entropy records bad targets in the block (no wait per loss)
  if self._on_device then tensor.check(C.gam_opt_watch_targets(S)) end
  local ok0, pred, loss = pcall(self._pass, self, 0)
  if not ok0 then
    C.gam_opt_watch_targets(nil)
    error(pred, 0)
  end
  local frozen = freeze_running_stats(self.model)
  local ok, err = pcall(function()
    local src = self:run(hyper)
    sync.before_update(self)
    self.base:_update(src, self._S, self)
    if self._on_device then
      -- the step's one wait: its checks and pass 0's loss
      local host = self._host
      tensor.check(C.gam_opt_read(S, host))
      if host[SLOT.flag] ~= 0 then
        self.base:_unstep()     -- the guarded update only restored θ
        self:_fail(host[SLOT.flag], host[SLOT.bad], host)
      end
      if loss == nil then loss = host[SLOT.loss] end
    end
  end)
  C.gam_opt_watch_targets(nil)
  restore_running_stats(frozen)
  self._step_closure = nil
  if not ok then
    if self._theta_saved then tensor.check(C.gam_opt_copy(self.flat.t, self:_buffers()[1].t)) end
    error(err, 0)
  end
  return pred, loss
end

--- opt:state_dict(): hyperparameters and the base optimiser's state (the work
-- buffers hold nothing between steps)
function Sharpness:state_dict()
  local hyper = {}
  for _, k in ipairs(self.hyper_names) do
    local v = self[k]
    if util.is_scheduler(v) then v = v:value() end
    hyper[k] = v
  end
  return {name = self.__typename, hyper = hyper, base = self.base:state_dict()}
end

function Sharpness:load_state_dict(sd)
  local who = self.__typename .. ':load_state_dict'
  if type(sd) ~= 'table' or type(sd.base) ~= 'table' then
    argcheck.raise(who .. ': expected a table from state_dict()')
  end
  if sd.name ~= self.__typename then
    argcheck.fail('%s: the state is from %s, not %s', who, tostring(sd.name), self.__typename)
  end
  self.base:load_state_dict(sd.base)
  for _, k in ipairs(self.hyper_names) do
    local v = sd.hyper and sd.hyper[k]
    if v ~= nil and not util.is_scheduler(self[k]) then self[k] = v end
  end
end

function Sharpness:repr()
  local parts = {}
  for _, k in ipairs(self.hyper_names) do
    local v = self[k]
    if util.is_scheduler(v) then v = tostring(v.__typename or 'scheduler') end
    parts[#parts + 1] = k .. ' = ' .. tostring(v)
  end
  return string.format('optim.%s{%s} over %s', self.__typename, table.concat(parts, ', '), tostring(self.base))
end

return Sharpness
