-- gam.flatness: exact against an analytic Hessian (linear regression with a
-- mean-squared-error closure, H = (2/n) AᵀA, A = [X 1]), against PyTorch's
-- exact Hessian-vector products (an MLP and a CNN with BatchNorm in eval
-- mode, tests/fixtures/flatness_hvp.lua from tests/fixtures/make_flatness.py),
-- reproducible bit for bit, leaving parameters, gradient, modes and
-- BatchNorm statistics as found, and clear errors for bad input.
local ffi = require 'ffi'
local gam = require 'gam'
local nn, F = gam.nn, gam.F
local here = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.'
local H = dofile(here .. '/helpers.lua')

-- ---- helpers ---------------------------------------------------------------------
local function tensor_of(a, dtype)
  local n = #a.data
  local buf = ffi.new(dtype == 'int64' and 'int64_t[?]' or 'float[?]', math.max(n, 1))
  for i = 1, n do buf[i - 1] = a.data[i] end
  return gam.from_buffer(buf, a.shape, dtype or 'float32')
end

-- max|a − b| / max|b| over two lists
local function rel(a, b)
  local num, den = 0, 0
  for i = 1, #b do
    num = math.max(num, math.abs(a[i] - b[i]))
    den = math.max(den, math.abs(b[i]))
  end
  return num / den
end

-- eigenvalues (descending) and eigenvectors (columns) of a symmetric matrix, cyclic Jacobi in double
local function jacobi(A)
  local n = #A
  local a, V = {}, {}
  for i = 1, n do
    a[i], V[i] = {}, {}
    for j = 1, n do a[i][j], V[i][j] = A[i][j], i == j and 1 or 0 end
  end
  for _ = 1, 100 do
    local off = 0
    for i = 1, n do for j = i + 1, n do off = off + a[i][j] ^ 2 end end
    if off < 1e-26 then break end
    for p = 1, n - 1 do
      for q = p + 1, n do
        if math.abs(a[p][q]) > 1e-300 then
          local theta = (a[q][q] - a[p][p]) / (2 * a[p][q])
          local t = (theta >= 0 and 1 or -1) / (math.abs(theta) + math.sqrt(theta * theta + 1))
          local c = 1 / math.sqrt(t * t + 1)
          local s = t * c
          for k = 1, n do
            local akp, akq = a[k][p], a[k][q]
            a[k][p], a[k][q] = c * akp - s * akq, s * akp + c * akq
          end
          for k = 1, n do
            local apk, aqk = a[p][k], a[q][k]
            a[p][k], a[q][k] = c * apk - s * aqk, s * apk + c * aqk
          end
          for k = 1, n do
            local vkp, vkq = V[k][p], V[k][q]
            V[k][p], V[k][q] = c * vkp - s * vkq, s * vkp + c * vkq
          end
        end
      end
    end
  end
  local idx = {}
  for i = 1, n do idx[i] = i end
  table.sort(idx, function(x, y) return a[x][x] > a[y][y] end)
  local vals, vecs = {}, {}
  for r, i in ipairs(idx) do
    vals[r] = a[i][i]
    vecs[r] = {}
    for k = 1, n do vecs[r][k] = V[k][i] end
  end
  return vals, vecs
end

-- solves M x = b (Gaussian elimination with partial pivoting, double)
local function solve(M, b)
  local n = #M
  local a = {}
  for i = 1, n do
    a[i] = {}
    for j = 1, n do a[i][j] = M[i][j] end
    a[i][n + 1] = b[i]
  end
  for c = 1, n do
    local p = c
    for r = c + 1, n do if math.abs(a[r][c]) > math.abs(a[p][c]) then p = r end end
    a[c], a[p] = a[p], a[c]
    for r = c + 1, n do
      local f = a[r][c] / a[c][c]
      for j = c, n + 1 do a[r][j] = a[r][j] - f * a[c][j] end
    end
  end
  local x = {}
  for i = n, 1, -1 do
    local s = a[i][n + 1]
    for j = i + 1, n do s = s - a[i][j] * x[j] end
    x[i] = s / a[i][i]
  end
  return x
end

local function snapshot(model)
  local flat, grad = model:flat_parameters()
  local s = {flat = gam.keep(flat:clone()), grad = gam.keep(grad:clone()), buffers = {}, modes = {}}
  for i, b in ipairs(model:buffers()) do s.buffers[i] = gam.keep(b:clone()) end
  for i, m in ipairs(model:modules()) do s.modes[i] = m.training end
  return s
end

local function assert_same(model, s, what)
  local flat, grad = model:flat_parameters()
  assert.is_true(flat:allclose(s.flat, 0, 0), what .. ': parameters changed')
  assert.is_true(grad:allclose(s.grad, 0, 0), what .. ': gradient changed')
  for i, b in ipairs(model:buffers()) do
    assert.is_true(b:allclose(s.buffers[i], 0, 0), what .. ': a buffer changed')
  end
  for i, m in ipairs(model:modules()) do assert.are.equal(s.modes[i], m.training, what .. ': a mode changed') end
end

-- ---- linear regression: the analytic Hessian --------------------------------------------------
local N, D = 64, 5
local function regression()
  gam.manual_seed(1)
  local scales = gam.tensor({{3, 1, 0.7, 0.5, 0.3}})
  local X = gam.keep(gam.randn({N, D}) * scales)
  local y = gam.keep(gam.randn({N}) + 0.5)
  local model = nn.Linear(D, 1)
  local loss = function(pred, t)
    local r = pred:view(N) - t
    return (r * r):mean()
  end
  -- H = (2/n) AᵀA, A = [X 1]; the least-squares solution of A w = y
  local xs, ys = X:totable(), y:totable()
  local Hm, Aty = {}, {}
  for i = 1, D + 1 do
    Hm[i], Aty[i] = {}, 0
    for j = 1, D + 1 do Hm[i][j] = 0 end
  end
  for r = 1, N do
    local a = {}
    for c = 1, D do a[c] = xs[r][c] end
    a[D + 1] = 1
    for i = 1, D + 1 do
      Aty[i] = Aty[i] + a[i] * ys[r]
      for j = 1, D + 1 do Hm[i][j] = Hm[i][j] + 2 / N * a[i] * a[j] end
    end
  end
  local AtA = {}
  for i = 1, D + 1 do
    AtA[i] = {}
    for j = 1, D + 1 do AtA[i][j] = Hm[i][j] * N / 2 end
  end
  local w = solve(AtA, Aty)
  gam.no_grad(function()
    local wt = {}
    for c = 1, D do wt[c] = w[c] end
    model.weight:copy_(gam.tensor({wt}))
    model.bias:copy_(gam.tensor({w[D + 1]}))
  end)
  local fl = gam.flatness.new{model = model, loss = loss, batches = {{X, y}}}
  return fl, model, Hm
end

describe('gam.flatness on linear regression (analytic Hessian)', function()
  local fl, model, Hm = regression()
  local vals, vecs = jacobi(Hm)
  local trH = 0
  for i = 1, D + 1 do trH = trH + Hm[i][i] end

  it('hvp is H v to 1e-3 (a quadratic: only float32 rounding)', function()
    gam.manual_seed(7)
    local v = gam.randn({D + 1})
    local hv = fl:hvp(v):totable()
    local vt, want = v:totable(), {}
    for i = 1, D + 1 do
      want[i] = 0
      for j = 1, D + 1 do want[i] = want[i] + Hm[i][j] * vt[j] end
    end
    assert.is_true(rel(hv, want) < 1e-3, 'relative error ' .. rel(hv, want))
  end)

  it('lambda_max and its eigenvector', function()
    local lam, v, info = fl:lambda_max{iters = 300, tol = 1e-5, seed = 0}
    assert.is_true(math.abs(lam - vals[1]) / vals[1] < 1e-3, string.format('%g vs %g', lam, vals[1]))
    assert.is_true(info.converged, string.format("not converged after %d iterations", info.iters))
    local vt, c = v:totable(), 0
    for i = 1, D + 1 do c = c + vt[i] * vecs[1][i] end
    assert.is_true(math.abs(math.abs(c) - 1) < 1e-3, 'cosine with the true eigenvector ' .. c)
  end)

  it('the top 3 eigenvalues', function()
    local got = fl:eigenvalues{k = 3, iters = 300, tol = 1e-6, seed = 0}
    for j = 1, 3 do
      assert.is_true(math.abs(got[j] - vals[j]) / vals[j] < 1e-3, string.format('λ%d %g vs %g', j, got[j], vals[j]))
    end
  end)

  it('the trace within 4 standard errors', function()
    local tr, se, info = fl:trace{samples = 200, seed = 0}
    assert.are.equal(200, info.samples)
    assert.is_true(se > 0 and se < 0.2 * trH)
    assert.is_true(math.abs(tr - trH) <= 4 * se, string.format('%g ± %g vs %g', tr, se, trH))
  end)

  it('R0 = ½ρ²λmax and R1 = ρ²λmax within 1% at the least-squares minimum', function()
    for _, rho in ipairs {0.05, 0.5} do
      local r0, i0 = fl:zeroth_order{rho = rho, steps = 20}
      local r1, i1 = fl:first_order{rho = rho, steps = 20}
      assert.is_true(math.abs(r0 - 0.5 * rho ^ 2 * vals[1]) <= 0.01 * 0.5 * rho ^ 2 * vals[1],
                     string.format('R0 %g vs %g', r0, 0.5 * rho ^ 2 * vals[1]))
      assert.is_true(math.abs(r1 - rho ^ 2 * vals[1]) <= 0.01 * rho ^ 2 * vals[1],
                     string.format('R1 %g vs %g', r1, rho ^ 2 * vals[1]))
      assert.is_true(i0.steps >= 1 and i0.steps <= 20 and i1.steps >= 1 and i1.steps <= 20)
      assert.is_true(math.abs(math.sqrt((i0.delta * i0.delta):sum():item()) - rho) < 1e-4 * rho)
    end
  end)

  it('the loss and gradient agree with the closure', function()
    local g, l = fl:gradient()
    assert.is_true(math.abs(fl:loss() - l) < 1e-12)
    local gt = g:totable()
    for i = 1, D + 1 do assert.is_true(math.abs(gt[i]) < 1e-4) end   -- the minimum
    assert.are.equal(D + 1, fl:numel())
  end)

  it('leaves the model as found', function()
    local s = snapshot(model)
    fl:lambda_max{iters = 5}
    fl:trace{samples = 3}
    fl:first_order{steps = 3}
    assert_same(model, s, 'linear')
  end)
end)

-- ---- against PyTorch's exact HVPs ------------------------------------------------------------------
local fixture = dofile(here .. '/fixtures/flatness_hvp.lua')
local builders = {
  mlp = function()
    return nn.Sequential{nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 5)}
  end,
  cnn_bn_eval = function()
    return nn.Sequential{nn.Conv2d(3, 4, 3, {padding = 1}), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(64, 5)}
  end,
}
local function fixture_case(name, opts)
  local c = fixture[name]
  local m = builders[name]()
  local sd = {}
  for k, v in pairs(c.state) do sd[k] = tensor_of(v) end
  m:load_state_dict(sd)
  m:train()      -- flatness measures in eval mode by itself
  local batches = {}
  for i, b in ipairs(c.batches) do batches[i] = {tensor_of(b.x), tensor_of(b.y, 'int64')} end
  local o = {model = m, loss = function(p, y) return F.cross_entropy(p, y):mean() end, batches = batches}
  for k, v in pairs(opts or {}) do o[k] = v end
  return gam.flatness.new(o), m, c
end

describe('gam.flatness against PyTorch (exact Hessian-vector products)', function()
  for _, name in ipairs {'mlp', 'cnn_bn_eval'} do
    it(name .. ': loss, gradient, and H v to 1e-3 relative', function()
      local fl, m, c = fixture_case(name)
      local s = snapshot(m)
      assert.is_true(math.abs(fl:loss() - c.loss) / c.loss < 1e-5)
      local g = fl:gradient()
      assert.is_true(rel(g:totable(), c.gradient.data) < 1e-5)
      for k = 1, 2 do
        local e = rel(fl:hvp(tensor_of(c.v[k])):totable(), c.hv[k].data)
        assert.is_true(e < 1e-3, string.format('%s v%d: relative error %.3g', name, k, e))
      end
      assert_same(m, s, name)
    end)
  end

  it('without frozen activation patterns a crossed ReLU kink spoils the product', function()
    local fl, _, c = fixture_case('cnn_bn_eval', {freeze = false})
    local worst = 0
    for k = 1, 2 do worst = math.max(worst, rel(fl:hvp(tensor_of(c.v[k])):totable(), c.hv[k].data)) end
    assert.is_true(worst > 1e-2, 'expected a kink to be crossed at this fd_scale, worst error ' .. worst)
  end)

  it('train_mode uses batch statistics and leaves the running statistics alone', function()
    local fl, m = fixture_case('cnn_bn_eval', {train_mode = true})
    local fe = fixture_case('cnn_bn_eval')
    local s = snapshot(m)
    assert.is_true(math.abs(fl:loss() - fe:loss()) > 1e-6)
    fl:lambda_max{iters = 3}
    assert_same(m, s, 'train_mode')
  end)
end)

-- ---- reproducibility, errors, loaders -----------------------------------------------------------------
describe('gam.flatness reproducibility and errors', function()
  it('the same seed gives the same numbers bit for bit; another seed other probes', function()
    local fl = fixture_case('mlp')
    local l1, v1 = fl:lambda_max{iters = 8, seed = 3}
    local l2, v2 = fl:lambda_max{iters = 8, seed = 3}
    assert.are.equal(l1, l2)
    assert.is_true(v1:allclose(v2, 0, 0))
    local t1, s1, i1 = fl:trace{samples = 4, seed = 5}
    local t2, s2 = fl:trace{samples = 4, seed = 5}
    assert.are.equal(t1, t2)
    assert.are.equal(s1, s2)
    local _, _, i3 = fl:trace{samples = 4, seed = 6}
    assert.are_not.equal(i1.values[1], i3.values[1])
    local e1 = fl:eigenvalues{k = 2, iters = 5, seed = 1}
    local e2 = fl:eigenvalues{k = 2, iters = 5, seed = 1}
    assert.are.same(e1, e2)
    assert.are.equal(fl:first_order{steps = 3}, fl:first_order{steps = 3})
    assert.are.equal(fl:zeroth_order{steps = 3}, fl:zeroth_order{steps = 3})
    -- progress reports every iteration
    local seen = {}
    local fp = gam.flatness.new{model = fl.model, loss = fl.loss_fn, batches = fl.batches,
                                progress = function(what, i, n) seen[#seen + 1] = what .. ' ' .. i .. '/' .. n end}
    fp:lambda_max{iters = 2, tol = 0}
    fp:trace{samples = 1}
    assert.are.same({'lambda_max 1/2', 'lambda_max 2/2', 'trace 1/1'}, seen)
    -- the caller's RNG is untouched
    gam.manual_seed(11)
    local before = gam.rand({3}):totable()
    gam.manual_seed(11)
    fl:trace{samples = 2, seed = 0}
    assert.are.same(before, gam.rand({3}):totable())
  end)

  it('clear errors for bad input', function()
    local fl, m = fixture_case('mlp')
    local lossf = function(p, y) return F.cross_entropy(p, y):mean() end
    H.contains(H.errmsg(gam.flatness.new, {model = m, loss = lossf, batches = {}}), 'no batches')
    H.contains(H.errmsg(gam.flatness.new, {model = m, loss = lossf}), 'no batches')
    H.contains(H.errmsg(gam.flatness.new, {model = m, loss = 3, batches = {{gam.zeros({1, 10}), 0}}}), 'loss must be')
    H.contains(H.errmsg(gam.flatness.new, {model = 5, loss = lossf, batches = {}}), 'model must be')
    H.contains(H.errmsg(gam.flatness.new, {model = m, loss = lossf, batches = {{1, 2}}}), 'batches[1]')
    H.contains(H.errmsg(gam.flatness.new, {model = m, loss = lossf, batches = {{gam.zeros({1, 10}), 0}}, rho = 1}),
               "unknown option 'rho'")
    H.contains(H.errmsg(gam.flatness.new, {model = m, loss = lossf, loader = {}, n_batches = 0}), 'n_batches')
    H.contains(H.errmsg(fl.zeroth_order, fl, {rho = 0}), 'rho must be a number > 0')
    H.contains(H.errmsg(fl.first_order, fl, {rho = -0.1}), 'rho must be a number > 0')
    H.contains(H.errmsg(fl.eigenvalues, fl, {k = fl:numel() + 1}), 'larger than the number of parameters')
    H.contains(H.errmsg(fl.lambda_max, fl, {iters = 0}), 'iters must be')
    H.contains(H.errmsg(fl.trace, fl, {samples = 1.5}), 'samples must be')
    H.contains(H.errmsg(fl.hvp, fl, gam.zeros({3})), 'v must be a float32 tensor of ' .. fl:numel())
    H.contains(H.errmsg(fl.lambda_max, fl, {iter = 3}), "unknown option 'iter'")
    -- a non-finite loss names the batch, and leaves the model as found
    local s = snapshot(m)
    local bad = gam.flatness.new{model = m, batches = fl.batches,
                                 loss = function(p, y) return F.cross_entropy(p, y):mean() * (0 / 0) end}
    H.contains(H.errmsg(bad.loss, bad), 'the loss of batch 1 is not finite')
    H.contains(H.errmsg(bad.lambda_max, bad, {iters = 2}), 'not finite')
    assert_same(m, s, 'after an error')
  end)

  it('takes n_batches from a loader', function()
    gam.manual_seed(2)
    local ds = gam.data.dataset{images = gam.randint(0, 256, {12, 1, 2, 5}):byte(), labels = gam.randint(0, 3, {12}),
                                classes = 3}
    local loader = gam.data.loader{dataset = ds, batch_size = 4}
    local m = nn.Sequential{nn.Flatten(), nn.Linear(10, 3)}
    local lossf = function(p, y) return F.cross_entropy(p, y):mean() end
    local fl = gam.flatness.new{model = m, loss = lossf, loader = loader, n_batches = 2}
    assert.are.equal(2, #fl.batches)
    local x, y = gam.data.augment(ds:slice(1, 8))
    local want = gam.no_grad(function() return lossf(m(x), y):item() end)
    assert.is_true(math.abs(fl:loss() - want) < 1e-6)
  end)
end)
