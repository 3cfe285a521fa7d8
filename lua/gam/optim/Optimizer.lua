-- gam.optim.Optimizer — what SGD, Adam and AdamW share: the parameter list,
-- the state buffers, the flat-arena fast path, zero_grad and state_dict.
--
-- State lives in one flat buffer per kind (momentum_buffer; exp_avg and
-- exp_avg_sq), allocated on the first step, laid out like the parameters one
-- after another. When the parameters are consecutive views of one storage (a
-- model's flat arena, see Module:flat_parameters) and so are their gradients,
-- a step is ONE fused kernel call over the whole vector; otherwise the same
-- kernel runs once per parameter over its slice of the state. Parameters
-- without a gradient are skipped, as in PyTorch (outside the arena).
--
-- A subclass defines:
--   Cls.state_names_for(hyper) -> {'momentum_buffer'}   kinds of flat state
--   Cls.hyper_names  = {'lr', 'momentum', ...}          saved by state_dict
--   Cls.kernel(self, param, grad, bufs, src, lr, step, guard, prof)  one engine call
--                      over a vector, through gam.optim.passes (bufs[k] = state slice
--                      of kind k, step counts from 1; guard: nil, or the SAM family's
--                      scalars block, whose flag turns the update into param = src;
--                      prof: nil, or the optimiser whose profile counts the call)
-- State lives on the parameters' device (cpu or cuda), like the kernels.
local ffi = require 'ffi'
local C = require 'gam.lib'
local tensor = require 'gam.tensor'
local util = require 'gam.optim.util'
local argcheck = require 'gam.argcheck'
local sync = require 'gam.optim.sync'

local Optimizer = {}
Optimizer.__index = Optimizer
Optimizer.is_base_optimizer = true

--- Optimizer.extend(name) -> a subclass whose instances are made by Cls.new
function Optimizer.extend(name)
  local cls = setmetatable({__typename = name}, {__index = Optimizer})
  cls.__index = cls
  cls.__tostring = function(self) return self:repr() end
  return cls
end

-- checks the params option and returns a plain list of tensors
local function param_list(who, params)
  if params == nil then
    argcheck.raise(who .. ': params is required (a list of tensors, e.g. model:parameters())')
  end
  if tensor.is_tensor(params) then params = {params} end
  if type(params) ~= 'table' or #params == 0 then
    argcheck.raise(who .. ': params must be a non-empty list of tensors, e.g. model:parameters()')
  end
  local list, seen = {}, {}
  for i, p in ipairs(params) do
    if not tensor.is_tensor(p) then
      argcheck.fail('%s: params[%d] must be a tensor, got %s', who, i, type(p))
    end
    tensor.T(p, who, 'params[' .. i .. ']')
    if p:dtype() ~= 'float32' then
      argcheck.fail('%s: params[%d] must be float32, got %s', who, i, p:dtype())
    end
    local key = tostring(ffi.cast('void *', p.t))
    if seen[key] then argcheck.fail('%s: params[%d] is params[%d] again', who, i, seen[key]) end
    seen[key] = i
    list[i] = p
  end
  return list
end

--- cls:init(who, opts): common construction (params, lr), called by subclasses
function Optimizer.init(self, who, opts)
  self.params = param_list(who, opts.params)
  self.lr = argcheck.scheduled(who, 'lr', opts.lr, self.default_lr)
  self.state = {steps = {}}          -- steps[i]: steps taken by parameter i
  for i = 1, #self.params do self.state.steps[i] = 0 end
  self._numel = 0
  self._offsets = {}
  for i, p in ipairs(self.params) do
    self._offsets[i] = self._numel
    self._numel = self._numel + p:numel()
  end
  self._pptrs = ffi.new('gam_tensor*[?]', #self.params)
  self._gptrs = ffi.new('gam_tensor*[?]', #self.params)
  return self
end

--- opt:get_lr(): the learning rate now (a number, or its scheduler's value)
function Optimizer:get_lr()
  return argcheck.current(self.__typename, 'lr', self.lr)
end

-- ---- the arena ---------------------------------------------------------------------
-- a 1-D view over n engine tensors when they are consecutive slices of one storage
local function span(ptrs, n)
  tensor.check(C.gam_opt_span(tensor.outp, ptrs, n))
  local t = tensor.outp[0]
  if t == nil then return nil end
  return tensor.wrap(t)
end

-- flat, flat_grad when params and grads are consecutive views of one storage each
function Optimizer:_arena()
  local params = self.params
  local first = tensor.T(params[1], self.__typename, 'params[1]')
  local f = self._flat
  if f and f.t ~= nil and f.t.storage == first.storage and f.t.offset == first.offset
     and first.grad ~= nil and self._flat_grad.t.storage == first.grad.storage
     and self._flat_grad.t.offset == first.grad.offset then
    return f, self._flat_grad
  end
  self._flat, self._flat_grad = nil, nil
  for i, p in ipairs(params) do
    local t = tensor.T(p, self.__typename, 'params[' .. i .. ']')
    self._pptrs[i - 1] = t
    self._gptrs[i - 1] = t.grad
    if t.grad == nil then return nil end
  end
  local flat = span(self._pptrs, #params)
  if not flat then return nil end
  local grad = span(self._gptrs, #params)
  if not grad then return nil end
  self._flat, self._flat_grad = tensor.keep(flat), tensor.keep(grad)
  return self._flat, self._flat_grad
end

-- the state buffers, allocated on first use on the parameters' device:
-- self._bufs[k] is a flat vector
function Optimizer:_buffers()
  if not self._bufs then
    local bufs = {}
    local device = self.params[1]:device()
    for k, _ in ipairs(self.state_names) do
      bufs[k] = tensor.keep(tensor.zeros({self._numel}, {device = device}))
    end
    self._bufs = bufs
  end
  return self._bufs
end

-- slice of every state buffer for parameter i, shaped like it
function Optimizer:_slices(i)
  local p, off = self.params[i], self._offsets[i]
  local r = {}
  for k, b in ipairs(self:_buffers()) do
    r[k] = b:narrow(1, off + 1, p:numel()):view(p:shape())
  end
  return r
end

--- opt:step(closure): one update from the gradients in .grad; closure, when
-- given, is called first (with grad mode on) and its result returned.
function Optimizer:step(closure)
  local loss
  if closure ~= nil then
    if type(closure) ~= 'function' then
      argcheck.raise(self.__typename .. ':step: closure must be a function, got ' .. type(closure))
    end
    loss = tensor.enable_grad(closure)
  end
  sync.base_step(self)   -- data-parallel: the gradient averaged over the ranks
  self:_update(nil)
  return loss
end

-- The update itself. src (a flat vector or nil): the point the step starts
-- from instead of the current parameters; only with the arena (the SAM family).
-- guard (a scalars block or nil, see gam.h): with its flag set the kernel
-- only restores the parameters to src; the caller then undoes the step count
-- with _unstep. prof: the optimiser profiling the kernel (or nil).
function Optimizer:_update(src, guard, prof)
  local lr = self:get_lr()
  local flat, grad = self:_arena()
  local steps = self.state.steps
  local uniform = true
  for i = 2, #steps do if steps[i] ~= steps[1] then uniform = false; break end end
  if src ~= nil and not (flat and uniform) then
    argcheck.raise(self.__typename .. ': a step from a saved point needs the parameters in one flat arena')
  end
  tensor.scope(function()
    if flat and uniform then
      self:kernel(flat, grad, self:_buffers(), src, lr, steps[1] + 1, guard, prof)
      for i = 1, #steps do steps[i] = steps[i] + 1 end
    else
      for i, p in ipairs(self.params) do
        local t = p.t
        if t.grad ~= nil then
          self:kernel(p, p.grad, self:_slices(i), nil, lr, steps[i] + 1)
          steps[i] = steps[i] + 1
        end
      end
    end
  end)
end

-- takes back the step count of an update that the guard turned into a restore
function Optimizer:_unstep()
  local steps = self.state.steps
  for i = 1, #steps do steps[i] = steps[i] - 1 end
end

--- opt:zero_grad(): zeroes every gradient in place
function Optimizer:zero_grad()
  local _, grad = self:_arena()
  if grad then
    grad:fill_(0)
    return
  end
  for _, p in ipairs(self.params) do
    if p.t.grad ~= nil then tensor.check(C.gam_fill_(p.t.grad, 0)) end
  end
end

--- opt:state_bytes(): bytes of state this optimiser owns
function Optimizer:state_bytes()
  return self._bufs and #self._bufs * 4 * self._numel or 0
end

--- opt:state_dict() -> {name, hyper = {...}, state = {[i] = {step, <buffer> = view}}}
-- Buffers are views sharing the optimiser's storage (copy them to keep a snapshot).
function Optimizer:state_dict()
  local hyper = {}
  for _, k in ipairs(self.hyper_names) do
    local v = self[k]
    if k == 'lr' then v = self:get_lr() end
    if type(v) == 'table' then v = {unpack(v)} end
    hyper[k] = v
  end
  local state = {}
  for i = 1, #self.params do
    local s = {step = self.state.steps[i]}
    if self._bufs then
      for k, v in ipairs(self:_slices(i)) do s[self.state_names[k]] = tensor.keep(v) end
    end
    state[i] = s
  end
  return {name = self.__typename, hyper = hyper, state = state}
end

--- opt:load_state_dict(sd): restores hyperparameters (lr only when it is a
-- number here: a scheduler keeps its own state), step counts and buffers
function Optimizer:load_state_dict(sd)
  local who = self.__typename .. ':load_state_dict'
  if type(sd) ~= 'table' or type(sd.state) ~= 'table' or type(sd.hyper) ~= 'table' then
    argcheck.raise(who .. ': expected a table from state_dict()')
  end
  if sd.name ~= self.__typename then
    argcheck.fail('%s: the state is from %s, not %s', who, tostring(sd.name), self.__typename)
  end
  if #sd.state ~= #self.params then
    argcheck.fail('%s: the state has %d parameters, this optimiser %d', who, #sd.state, #self.params)
  end
  -- check everything before changing anything; the state kinds follow the
  -- loaded hyperparameters (SGD keeps a momentum buffer only with momentum)
  local hyper = {}
  for _, k in ipairs(self.hyper_names) do
    local v = sd.hyper[k]
    if v == nil then v = self[k] end
    if k ~= 'lr' and type(v) ~= type(self[k]) then
      argcheck.fail('%s: hyper.%s must be a %s, got %s', who, k, type(self[k]), tostring(v))
    end
    hyper[k] = v
  end
  local names = self.state_names_for(hyper)
  for i, s in ipairs(sd.state) do
    if type(s) ~= 'table' or type(s.step) ~= 'number' or s.step < 0 then
      argcheck.fail('%s: state[%d].step must be a count, got %s', who, i,
                          tostring(type(s) == 'table' and s.step or s))
    end
    for _, name in ipairs(names) do
      local v = s[name]
      if s.step > 0 and v == nil then
        argcheck.fail('%s: state[%d] has no %s', who, i, name)
      end
      if v ~= nil and (not tensor.is_tensor(v) or v:numel() ~= self.params[i]:numel()) then
        argcheck.fail('%s: state[%d].%s must be a tensor of %d elements', who, i, name,
                            self.params[i]:numel())
      end
    end
  end
  for _, k in ipairs(self.hyper_names) do
    local v = hyper[k]
    if type(v) == 'table' and not util.is_scheduler(v) then v = {unpack(v)} end
    if not (k == 'lr' and util.is_scheduler(self.lr)) then self[k] = v end
  end
  if #names ~= #self.state_names then self._bufs = nil end
  self.state_names = names
  for i, s in ipairs(sd.state) do
    self.state.steps[i] = s.step
    if s[self.state_names[1]] ~= nil then
      for k, v in ipairs(self:_slices(i)) do v:copy_(s[self.state_names[k]]) end
    end
  end
end

function Optimizer:repr()
  local parts = {}
  for _, k in ipairs(self.hyper_names) do
    local v = self[k]
    if type(v) == 'table' and not util.is_scheduler(v) then v = '{' .. table.concat(v, ', ') .. '}' end
    if util.is_scheduler(v) then v = tostring(v.__typename or 'scheduler') end
    parts[#parts + 1] = k .. ' = ' .. tostring(v)
  end
  return string.format('optim.%s{%s} over %d parameters (%d values)', self.__typename,
                       table.concat(parts, ', '), #self.params, self._numel)
end

return Optimizer
