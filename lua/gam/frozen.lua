-- gam.frozen — activation patterns frozen at one point, so that finite
-- differences of gradients give the Hessian that autograd's exact
-- Hessian-vector products give.
--
-- A ReLU network's loss is piecewise smooth: its gradient jumps wherever a
-- unit's pre-activation crosses 0 (or a max-pooling window changes its
-- winner). Double backward (PyTorch's Hessian-vector products) treats every
-- ReLU mask and every pooling choice as a constant of the point; a central
-- difference (∇L(θ+εv) − ∇L(θ−εv))/2ε instead picks up every unit crossed on
-- the way, each adding a term of size O(1/ε) — with enough units there always
-- are some. A recording fixes the pattern:
--
--   local rec = frozen.new()
--   rec:record(function() return model(x) end)      -- at θ: relu(x) and max_pool2d as usual,
--                                                   -- each call's mask kept, in call order
--   rec:replay(function() return model(x) end)      -- elsewhere: relu(x) = x ⊙ mask,
--                                                   -- max_pool2d(x) = the recorded winners
--   rec:clear()                                     -- frees the masks
--
-- While record or replay runs, Tensor.relu (thus F.relu, nn.ReLU, x:relu())
-- and F.max_pool2d (nn.MaxPool2d) are replaced; replay must make the same
-- calls in the same order with the same shapes (an error says which differs).
-- The masks are float32 tensors the size of the activations: memory of one
-- float per ReLU output and max-pooling input of the recorded passes.
-- Replayed max pooling needs non-overlapping windows without padding
-- (stride = kernel size, as nn.MaxPool2d(k) has): max pooling is then
-- k_h k_w · avg_pool(x ⊙ winner mask).
local tensor = require 'gam.tensor'
local F = require 'gam.functional'

local Tensor = tensor.Tensor
local M = {}
local Recording = {}
Recording.__index = Recording

local active = nil          -- the recording whose record/replay is running
local orig_relu, orig_pool = Tensor.relu, F.max_pool2d
local TINY = 1e-37          -- x / (|x| + TINY) is exactly 1 for every float32 x > 2e-30

local function shape_str(t) return '[' .. table.concat(t:shape(), ', ') .. ']' end

local function same_shape(a, b)
  local sa, sb = a:shape(), b:shape()
  if #sa ~= #sb then return false end
  for i = 1, #sa do if sa[i] ~= sb[i] then return false end end
  return true
end

-- the recorded mask of the next call, checked
local function next_mask(self, kind, x)
  self.i = self.i + 1
  local e = self.masks[self.i]
  if not e then
    error(string.format('frozen: replay makes more activation calls than were recorded (%d); call %d is a %s',
                        #self.masks, self.i, kind), 0)
  end
  if e.kind ~= kind or not same_shape(e.mask, x) then
    error(string.format('frozen: call %d of the replay is a %s on %s, the recording had a %s on %s', self.i, kind,
                        shape_str(x), e.kind, shape_str(e.mask)), 0)
  end
  return e.mask
end

local function relu(x)
  local self = active
  if self.mode == 'replay' then return x * next_mask(self, 'relu', x) end
  local y = orig_relu(x)
  local m = tensor.no_grad(function()
    local d = x:detach()
    return orig_relu(d) / (d:abs() + TINY)
  end)
  self.masks[#self.masks + 1] = {kind = 'relu', mask = tensor.keep(m)}
  return y
end

local function max_pool2d(x, kernel, stride, padding, ceil_mode)
  local self = active
  local k = type(kernel) == 'table' and kernel or {kernel, kernel}
  local s = stride == nil and k or (type(stride) == 'table' and stride or {stride, stride})
  local p = padding == nil and {0, 0} or (type(padding) == 'table' and padding or {padding, padding})
  if k[1] ~= s[1] or k[2] ~= s[2] or p[1] ~= 0 or p[2] ~= 0 then
    error('frozen: max pooling can be frozen only with stride = kernel size and no padding', 0)
  end
  if self.mode == 'replay' then
    local m = next_mask(self, 'max_pool2d', x)
    return F.avg_pool2d(x * m, kernel, stride, 0, ceil_mode, true) * (k[1] * k[2])
  end
  local y = orig_pool(x, kernel, stride, padding, ceil_mode)
  -- the winners: the gradient of the pooled sum is 1 at each window's winner
  local m = tensor.enable_grad(function()
    local leaf = x:detach():clone():requires_grad_(true)
    orig_pool(leaf, kernel, stride, padding, ceil_mode):sum():backward()
    return leaf.grad:clone()
  end)
  self.masks[#self.masks + 1] = {kind = 'max_pool2d', mask = tensor.keep(m)}
  return y
end

--- frozen.new() -> an empty recording
function M.new() return setmetatable({masks = {}, i = 0}, Recording) end

local function run(self, mode, fn, ...)
  if active then error('frozen: a recording is already running (record and replay do not nest)', 2) end
  active, self.mode, self.i = self, mode, 0
  Tensor.relu, F.max_pool2d = relu, max_pool2d
  local res = {pcall(fn, ...)}
  Tensor.relu, F.max_pool2d = orig_relu, orig_pool
  active = nil
  if not res[1] then error(res[2], 0) end
  if mode == 'replay' and self.i ~= #self.masks then
    error(string.format('frozen: the replay made %d activation calls, the recording %d', self.i, #self.masks), 2)
  end
  return unpack(res, 2, table.maxn(res))
end

--- rec:record(fn, ...) -> fn(...): runs fn, appending the mask of every call
function Recording:record(fn, ...) return run(self, 'record', fn, ...) end

--- rec:replay(fn, ...) -> fn(...): runs fn with the recorded masks, from the first
function Recording:replay(fn, ...) return run(self, 'replay', fn, ...) end

--- rec:clear(): frees the masks
function Recording:clear()
  for _, e in ipairs(self.masks) do tensor.release(e.mask) end
  self.masks = {}
end

--- rec:count() -> the number of recorded calls
function Recording:count() return #self.masks end

return M
