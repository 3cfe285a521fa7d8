-- gam.flatness — how flat the loss is around a model's parameters: the loss,
-- its gradient, Hessian-vector products, the Hessian's top eigenvalues and
-- trace, and the zeroth- and first-order flatness of the GAM paper
-- (Zhang et al., CVPR 2023):
--
--   R0(θ) = max_{‖δ‖≤ρ} L(θ+δ) − L(θ)          (SAM's sharpness)
--   R1(θ) = ρ · max_{‖δ‖≤ρ} ‖∇L(θ+δ)‖          (first-order flatness)
--
--   local fl = gam.flatness.new{model = model, loss = function(pred, y) return F.cross_entropy(pred, y) end,
--                               batches = {{x1, y1}, {x2, y2}}}     -- or loader = L, n_batches = k
--   fl:loss()                       -- mean loss over the batches (a number)
--   fl:gradient()                   -- flat ∇L (a tensor laid out like model:flat_parameters())
--   fl:hvp(v)                       -- flat H v
--   fl:lambda_max{iters = 100, tol = 1e-4, seed = 0}  -- λ, unit eigenvector, {iters, converged}
--   fl:eigenvalues{k = 5, seed = 0}                   -- {λ1 ≥ … ≥ λk}, {vectors}, {iters}
--   fl:trace{samples = 100, seed = 0}                 -- tr H (Hutchinson), its standard error
--   fl:zeroth_order{rho = 0.05, steps = 20}           -- R0, {steps, delta}
--   fl:first_order{rho = 0.05, steps = 20}            -- R1, {steps, delta}
--
-- Options of new: train_mode = false, freeze = true, fd_scale = 3e-3,
-- progress = function(what, i, n, value) (called after every iteration).
--
-- L is the mean over the batches of loss(model(x), y) (each batch weighs the
-- same), with the model in evaluation mode (BatchNorm uses its running
-- statistics, Dropout is off) unless train_mode = true. In train mode the
-- running statistics are frozen (momentum 0) and the RNG is reset before
-- every evaluation, so that L is one fixed function of θ. Every call leaves
-- the parameters, the flat gradient, the modules' modes and buffers exactly
-- (bit for bit) as found.
--
-- Hessian-vector products: the engine has no double backward, so
--   H v ≈ (∇L(θ + εv) − ∇L(θ − εv)) / 2ε,   ε = fd_scale · max(‖θ‖, 1) / ‖v‖
-- (central differences of two gradients on the flat arena; the step ‖εv‖ is
-- fd_scale = 3e-3 of the weights' norm: float32 rounding of θ ± εv and of the
-- gradients gives a relative error of about u/fd_scale ≈ 2e-5, the O(ε²)
-- truncation stays below it). With freeze = true (default) both gradients
-- replay the activation pattern recorded at θ (ReLU masks, max-pooling
-- winners: gam.frozen), so the difference is that of a smooth function and
-- the product is the one double backward gives; without it every ReLU unit
-- whose pre-activation crosses 0 between θ − εv and θ + εv adds an O(1/ε)
-- error (a CNN of the tests: errors of 6 to 10 times the product itself).
-- Measured against PyTorch's exact products (tests/flatness_spec.lua, fixture
-- tests/fixtures/flatness_hvp.lua from make_flatness.py): relative error
-- 3e-5 to 4e-5 on an MLP, 2e-5 to 3e-5 on a CNN with BatchNorm (fd_scale
-- 1e-2 .. 1e-3 all stay below 1e-4; 1e-4 reaches 1e-3 from rounding); on a
-- quadratic loss only rounding remains. A product costs two forward-backward
-- passes, and the recording one forward pass per point (shared by every
-- product at that point); the masks take one float per ReLU output.
--
-- Seeds: the random start vectors (power iteration, Hutchinson probes) come
-- from the engine RNG seeded with `seed`, drawn on the cpu; the caller's RNG
-- state is saved and restored. The same parameters, batches and seed give the
-- same numbers bit for bit on the cpu with a fixed thread count (the engine's
-- parallel reductions may combine partial sums in another order on another
-- thread count).
local C = require 'gam.lib'
local tensor = require 'gam.tensor'
local frozen = require 'gam.frozen'
local passes = require 'gam.optim.passes'
local argcheck = require 'gam.argcheck'
local fail, raise = argcheck.fail, argcheck.raise

local M = {}
local Flatness = {}
Flatness.__index = Flatness
M.Flatness = Flatness
M.FD_SCALE = 3e-3

local WHO = 'flatness'
local OPTIONS = {'model', 'loss', 'batches', 'loader', 'n_batches', 'train_mode', 'fd_scale', 'freeze', 'progress'}

-- ---- vector helpers (engine passes, reductions in double) ----------------------------
local function dot(a, b)
  local _, ab = passes.dot3(a.t, b.t)
  return ab
end
local function norm(a) return passes.norm(a.t) end
local function copy(dst, src) tensor.check(C.gam_opt_copy(dst.t, src.t)) end
-- v = s v, in place
local function scale_(v, s)
  tensor.scope(function() v:copy_(v * s) end)
end

-- an integer (integer = true) or a number, >= lo; argcheck's checks and wording
local function check_number(who, name, v, lo, integer)
  if integer then return argcheck.int(v, who, name, lo) end
  return argcheck.number(v, who, name, lo)
end

-- ---- construction ---------------------------------------------------------------------
--- gam.flatness.new{model, loss, batches = {{x, y}, ...} | loader = L, n_batches = k,
---                  train_mode = false, freeze = true, fd_scale = 3e-3, progress = nil}
function M.new(o)
  argcheck.options(WHO .. '.new', o, OPTIONS)
  local model = o.model
  if type(model) ~= 'table' or type(model.flat_parameters) ~= 'function' then
    raise(WHO .. '.new: model must be an nn module')
  end
  local lf = o.loss
  if type(lf) ~= 'function' and not (type(lf) == 'table' and getmetatable(lf) and getmetatable(lf).__call) then
    raise(WHO .. '.new: loss must be a function(pred, target) returning a scalar')
  end
  local batches = {}
  if o.batches ~= nil and o.loader ~= nil then raise(WHO .. '.new: give batches or loader, not both') end
  if o.loader ~= nil then
    local n = o.n_batches
    if type(n) ~= 'number' or n < 1 or n ~= math.floor(n) then
      raise(WHO .. '.new: n_batches must be a positive integer (the batches taken from the loader), got '
            .. tostring(n))
    end
    local L = o.loader
    if type(L) ~= 'table' or type(L.next) ~= 'function' then
      raise(WHO .. '.new: loader must be a gam.data.loader')
    end
    for i = 1, n do
      local x, y = L:next()
      if x == nil then break end
      batches[i] = {tensor.keep(x:clone()), tensor.keep(y:clone())}
    end
    if L.stop then L:stop() end
  elseif type(o.batches) == 'table' then
    for i, b in ipairs(o.batches) do
      if type(b) ~= 'table' or not tensor.is_tensor(b[1]) or b[2] == nil then
        fail('%s.new: batches[%d] must be {inputs, targets} with inputs a tensor', WHO, i)
      end
      batches[i] = {b[1], b[2]}
    end
  elseif o.batches ~= nil then
    raise(WHO .. '.new: batches must be a list {{x, y}, ...}, got ' .. type(o.batches))
  end
  if #batches == 0 then
    raise(WHO .. '.new: no batches (give batches = {{x, y}, ...} or a loader that yields some)')
  end
  local fd = o.fd_scale or M.FD_SCALE
  if type(fd) ~= 'number' or not (fd > 0 and fd < 1) then
    raise(WHO .. '.new: fd_scale must be a number in (0, 1), got ' .. tostring(fd))
  end
  local self = setmetatable({model = model, loss_fn = lf, batches = batches, fd_scale = fd,
                             train_mode = o.train_mode and true or false}, Flatness)
  if o.freeze ~= nil and type(o.freeze) ~= 'boolean' then raise(WHO .. '.new: freeze must be true or false') end
  self.freeze = o.freeze ~= false
  if o.progress ~= nil and type(o.progress) ~= 'function' then
    raise(WHO .. '.new: progress must be a function(what, i, n, value)')
  end
  self.progress = o.progress
  self._rec = frozen.new()
  self.flat, self.flat_grad = model:flat_parameters()
  self.n = self.flat:numel()
  self.device = self.flat:device()
  return self
end

function Flatness:numel() return self.n end

-- a new flat vector on the parameters' device (kept)
function Flatness:_vec() return tensor.keep(tensor.empty({self.n}, {device = self.device})) end

-- ---- the protected region: modes, running statistics, θ and ∇ put back -----------------------
-- Runs fn(theta0) with the model set up for measuring; theta0 is a copy of θ.
-- Whatever happens, θ, the flat gradient, the modules' modes, momenta and the
-- RNG state are restored afterwards.
function Flatness:_guard(fn)
  if self._inside then return fn(self._theta0) end
  local mods = self.model:modules()
  local modes, momenta = {}, {}
  for i, m in ipairs(mods) do
    modes[i] = rawget(m, 'training')
    local mo = rawget(m, 'momentum')
    if type(mo) == 'number' then momenta[#momenta + 1] = {m, mo} end
  end
  if self.train_mode then
    for _, e in ipairs(momenta) do e[1].momentum = 0 end
    self.model:train(true)
  else
    self.model:evaluate()
  end
  local theta0, grad0 = self._theta0 or self:_vec(), self._grad0 or self:_vec()
  self._theta0, self._grad0 = theta0, grad0
  copy(theta0, self.flat)
  copy(grad0, self.flat_grad)
  self._rng = tensor.rng_state()
  self._inside = true
  local res = {pcall(fn, theta0)}
  self._inside = false
  self._rec:clear()
  copy(self.flat, theta0)
  copy(self.flat_grad, grad0)
  tensor.set_rng_state(self._rng)
  for i, m in ipairs(mods) do rawset(m, 'training', modes[i]) end
  for _, e in ipairs(momenta) do e[1].momentum = e[2] end
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, table.maxn(res))
end

-- L and (with_grad) ∇L into the flat gradient, at the current θ; replay:
-- with the activation pattern recorded by _record
function Flatness:_eval(with_grad, replay)
  if replay and self.freeze then
    return self._rec:replay(function() return self:_eval(with_grad, false) end)
  end
  local nb = #self.batches
  local total = 0
  if with_grad then self.flat_grad:fill_(0) end
  if self.train_mode then tensor.set_rng_state(self._rng) end
  for i, b in ipairs(self.batches) do
    local v = tensor.scope(function()
      local run = function()
        local pred = self.model(b[1])
        local l = self.loss_fn(pred, b[2])
        if not tensor.is_tensor(l) or l:numel() ~= 1 then
          error(string.format('%s: loss must return a scalar tensor, got %s', WHO,
                              tensor.is_tensor(l) and ('a tensor of ' .. l:numel() .. ' values') or type(l)), 0)
        end
        if with_grad then (l * (1 / nb)):backward() end
        return l:item()
      end
      if with_grad then return tensor.enable_grad(run) end
      return tensor.no_grad(run)
    end)
    if v ~= v or v == math.huge or v == -math.huge then
      error(string.format('%s: the loss of batch %d is not finite (%s)', WHO, i, tostring(v)), 0)
    end
    total = total + v
  end
  return total / nb
end

-- θ = theta0 + s·d (d nil: θ = theta0)
function Flatness:_set(theta0, d, s)
  copy(self.flat, theta0)
  if d then self.flat:add_(d, s) end
end

-- records the activation pattern at point (freeze = true)
function Flatness:_record(point)
  if not self.freeze then return end
  self._rec:clear()
  self:_set(point)
  self._rec:record(function() return self:_eval(false) end)
end

-- out = ∇L(point + s·d) (replay: with the pattern recorded at point)
function Flatness:_grad_into(out, point, d, s, replay)
  self:_set(point, d, s)
  local l = self:_eval(true, replay)
  copy(out, self.flat_grad)
  return l
end

-- out = H(point) v by central differences; tmp: a work vector. With freeze,
-- the pattern must have been recorded at point (self:_record(point)).
function Flatness:_hvp_into(out, point, v, tmp)
  local nv = norm(v)
  if nv == 0 then out:fill_(0); return out end
  local eps = self.fd_scale * math.max(norm(point), 1) / nv
  self:_grad_into(out, point, v, eps, true)
  self:_grad_into(tmp, point, v, -eps, true)
  out:add_(tmp, -1)
  scale_(out, 1 / (2 * eps))
  return out
end

local function check_vector(self, who, v)
  if not tensor.is_tensor(v) or v:numel() ~= self.n or v:dtype() ~= 'float32' then
    fail('%s: v must be a float32 tensor of %d values (laid out like model:flat_parameters())', who, self.n)
  end
end

-- ---- basic measures -------------------------------------------------------------------------
--- fl:loss() -> the mean loss over the batches
function Flatness:loss()
  return self:_guard(function() return self:_eval(false) end)
end

--- fl:gradient() -> flat ∇L, and L
function Flatness:gradient()
  return self:_guard(function(theta0)
    local g = self:_vec()
    local l = self:_grad_into(g, theta0)
    return g, l
  end)
end

--- fl:hvp(v) -> flat H v (central differences of gradients)
function Flatness:hvp(v)
  check_vector(self, 'flatness:hvp', v)
  return self:_guard(function(theta0)
    local out, tmp = self:_vec(), self:_vec()
    local vv = v
    if v:device() ~= self.device then vv = tensor.keep(v:to(self.device)) end
    self:_record(theta0)
    self:_hvp_into(out, theta0, vv, tmp)
    tensor.release(tmp)
    return out
  end)
end

-- a random vector from the seed: Gaussian (kind 'normal') or Rademacher ±1
function Flatness:_random(seed, kind)
  local saved = tensor.rng_state()
  tensor.manual_seed(seed)
  local v = tensor.scope(function()
    local r
    if kind == 'rademacher' then
      r = tensor.randint(0, 2, {self.n}):float() * 2 - 1
    else
      r = tensor.randn({self.n})
    end
    if self.device ~= 'cpu' then r = r:to(self.device) end
    return r
  end)
  tensor.set_rng_state(saved)
  return tensor.keep(v)
end

-- v -= Σ ⟨u, v⟩ u over the unit vectors of list
local function orthogonalize(v, list)
  for _, u in ipairs(list) do v:add_(u, -dot(u, v)) end
end

-- power iteration on H restricted to the complement of `deflate` (unit vectors)
function Flatness:_power(theta0, iters, tol, seed, deflate, what)
  local v, w, tmp = self:_random(seed, 'normal'), self:_vec(), self:_vec()
  orthogonalize(v, deflate)
  local nv = norm(v)
  if nv == 0 then error(WHO .. ': the random start vector vanished (no direction left)', 0) end
  scale_(v, 1 / nv)
  local lambda, converged, it = 0, false, 0
  for i = 1, iters do
    it = i
    self:_hvp_into(w, theta0, v, tmp)
    orthogonalize(w, deflate)
    local new = dot(v, w)                         -- Rayleigh quotient vᵀHv (‖v‖ = 1)
    local nw = norm(w)
    if nw ~= nw or nw == math.huge then error(WHO .. ': a Hessian-vector product is not finite', 0) end
    if nw == 0 then lambda = 0; converged = true; break end
    copy(v, w)
    scale_(v, 1 / nw)
    if i > 1 and math.abs(new - lambda) <= tol * math.abs(new) then lambda = new; converged = true; break end
    lambda = new
    if self.progress then self.progress(what, i, iters, lambda) end
  end
  tensor.release(w); tensor.release(tmp)
  return lambda, v, {iters = it, converged = converged}
end

local POWER_OPTS = {'iters', 'tol', 'seed'}
--- fl:lambda_max{iters = 100, tol = 1e-4, seed = 0} -> λmax, its unit eigenvector, {iters, converged}
-- Power iteration: it finds the eigenvalue of largest magnitude (at a minimum,
-- where H is positive semi-definite, the largest); stops when the Rayleigh
-- quotient changes by at most tol relative.
function Flatness:lambda_max(o)
  local who = 'flatness:lambda_max'
  o = argcheck.opts(o, who, POWER_OPTS)
  local iters = check_number(who, 'iters', o.iters or 100, 1, true)
  local tol = check_number(who, 'tol', o.tol or 1e-4, 0)
  local seed = check_number(who, 'seed', o.seed or 0, 0, true)
  return self:_guard(function(theta0)
    self:_record(theta0)
    return self:_power(theta0, iters, tol, seed, {}, 'lambda_max')
  end)
end

--- fl:eigenvalues{k = 5, iters = 100, tol = 1e-4, seed = 0} -> {λ1, …, λk}, {v1, …, vk}, {iters}
-- Power iteration with deflation: eigenpair j is found in the complement of
-- the j − 1 before it (start vector from seed + j − 1); λ sorted descending.
function Flatness:eigenvalues(o)
  local who = 'flatness:eigenvalues'
  o = argcheck.opts(o, who, {'k', 'iters', 'tol', 'seed'})
  local k = check_number(who, 'k', o.k or 5, 1, true)
  if k > self.n then
    fail('%s: k = %d is larger than the number of parameters (%d)', who, k, self.n)
  end
  local iters = check_number(who, 'iters', o.iters or 100, 1, true)
  local tol = check_number(who, 'tol', o.tol or 1e-4, 0)
  local seed = check_number(who, 'seed', o.seed or 0, 0, true)
  return self:_guard(function(theta0)
    local vals, vecs, its = {}, {}, {}
    self:_record(theta0)
    for j = 1, k do
      local l, v, info = self:_power(theta0, iters, tol, seed + j - 1, vecs, 'eigenvalue ' .. j)
      vals[j], vecs[j], its[j] = l, v, info.iters
    end
    local order = {}
    for j = 1, k do order[j] = j end
    table.sort(order, function(a, b) return vals[a] > vals[b] end)
    local sv, svec, sit = {}, {}, {}
    for j, i in ipairs(order) do sv[j], svec[j], sit[j] = vals[i], vecs[i], its[i] end
    return sv, svec, {iters = sit}
  end)
end

--- fl:trace{samples = 100, seed = 0} -> estimate of tr H, its standard error, {samples}
-- Hutchinson: tr H = E[zᵀHz] over Rademacher z; the estimate is the mean of
-- `samples` draws (probe i from seed + i − 1), the error the sample standard
-- deviation over √samples.
function Flatness:trace(o)
  local who = 'flatness:trace'
  o = argcheck.opts(o, who, {'samples', 'seed'})
  local m = check_number(who, 'samples', o.samples or 100, 1, true)
  local seed = check_number(who, 'seed', o.seed or 0, 0, true)
  return self:_guard(function(theta0)
    local w, tmp = self:_vec(), self:_vec()
    local sum, sumsq, vals = 0, 0, {}
    self:_record(theta0)
    for i = 1, m do
      local z = self:_random(seed + i - 1, 'rademacher')
      self:_hvp_into(w, theta0, z, tmp)
      local q = dot(z, w)
      tensor.release(z)
      vals[i] = q
      sum = sum + q
      if self.progress then self.progress('trace', i, m, sum / i) end
    end
    local mean = sum / m
    for i = 1, m do sumsq = sumsq + (vals[i] - mean) ^ 2 end
    local se = m > 1 and math.sqrt(sumsq / (m - 1) / m) or math.huge
    tensor.release(w); tensor.release(tmp)
    return mean, se, {samples = m, values = vals}
  end)
end

-- ---- the paper's flatness measures --------------------------------------------------------------
local FLAT_OPTS = {'rho', 'steps', 'tol'}
local function flat_args(who, o)
  o = argcheck.opts(o, who, FLAT_OPTS)
  local rho = o.rho or 0.05
  if type(rho) ~= 'number' or not (rho > 0) or rho == math.huge then
    fail('%s: rho must be a number > 0, got %s', who, tostring(rho))
  end
  local steps = check_number(who, 'steps', o.steps or 20, 1, true)
  local tol = check_number(who, 'tol', o.tol or 1e-6, 0)
  return rho, steps, tol
end

-- Both measures ascend on the sphere ‖δ‖ = ρ: δ ← ρ a/‖a‖ with a the ascent
-- direction at θ + δ (projected gradient ascent with an unbounded step: on a
-- quadratic at its minimum this is power iteration on H, resp. H², whose
-- fixed point is the top eigenvector). The start is δ0 = ρ ∇L(θ)/‖∇L(θ)‖ (a
-- random unit direction when ∇L(θ) = 0, from seed 0). The value reported is
-- the best reached; stops when an ascent step improves it by less than tol
-- (relative) or after `steps` steps.
function Flatness:_ascend(theta0, rho, steps, tol, value_and_dir, what)
  local delta, a, tmp = self:_vec(), self:_vec(), self:_vec()
  self:_grad_into(delta, theta0)
  local nd = norm(delta)
  if nd == 0 then
    local r = self:_random(0, 'normal')
    copy(delta, r)
    nd = norm(delta)
  end
  scale_(delta, rho / nd)
  local best, used = -math.huge, 0
  for i = 1, steps do
    used = i
    local val = value_and_dir(delta, a, tmp)      -- value at θ + δ, ascent direction into a
    if val ~= val then error(WHO .. ': a flatness value is not finite', 0) end
    local improved = val - best
    if val > best then best = val end
    if self.progress then self.progress(what, i, steps, best) end
    if i > 1 and improved <= tol * math.abs(best) then break end
    local na = norm(a)
    if na == 0 or na ~= na then break end
    copy(delta, a)
    scale_(delta, rho / na)
  end
  tensor.release(a); tensor.release(tmp)
  return best, {steps = used, delta = delta}
end

--- fl:zeroth_order{rho = 0.05, steps = 20, tol = 1e-6} -> R0, {steps, delta}
function Flatness:zeroth_order(o)
  local rho, steps, tol = flat_args('flatness:zeroth_order', o)
  return self:_guard(function(theta0)
    self:_set(theta0)
    local l0 = self:_eval(false)
    return self:_ascend(theta0, rho, steps, tol, function(delta, a)
      local l = self:_grad_into(a, theta0, delta, 1)     -- a = ∇L(θ + δ)
      return l - l0
    end, 'zeroth_order')
  end)
end

--- fl:first_order{rho = 0.05, steps = 20, tol = 1e-6} -> R1, {steps, delta}
-- the ascent direction of ‖∇L(θ+δ)‖ is H(θ+δ) ∇L(θ+δ) / ‖∇L(θ+δ)‖
function Flatness:first_order(o)
  local rho, steps, tol = flat_args('flatness:first_order', o)
  return self:_guard(function(theta0)
    local point, g = self:_vec(), self:_vec()
    local r, info = self:_ascend(theta0, rho, steps, tol, function(delta, a, tmp)
      copy(point, theta0)
      point:add_(delta, 1)
      self:_grad_into(g, point)
      local ng = norm(g)
      self:_record(point)
      self:_hvp_into(a, point, g, tmp)                  -- direction only: the 1/‖g‖ is a scale
      return rho * ng
    end, 'first_order')
    tensor.release(point); tensor.release(g)
    return r, info
  end)
end

return M
