-- The CUDA backend against the CPU backend (the oracle). Needs a GPU: run it
-- with `make test-cuda` (build/gamlua tests/run_busted.lua tests/cuda/ops_cuda.lua).
-- The file is deliberately not named *_spec.lua, so the default runner (and
-- `make test`, which runs where there is no GPU) does not pick it up.
--
-- Every op (each a cuda entry of the backend table) runs forward and backward on random inputs on
-- both devices; outputs and gradients must agree within a relative error of
-- 1e-4 (max |cuda - cpu| / max |cpu| per tensor), integer results exactly.
-- Math modes: float32 throughout; cuBLAS in CUBLAS_DEFAULT_MATH (no TF32);
-- kernels compiled without fast math (fused multiply-adds allowed).
local gam = require 'gam'
local F = gam.F

local TOL = 1e-4

if not gam.cuda_available() then
  error('tests/cuda/ops_cuda.lua needs a CUDA device: gam.cuda_available() is false' ..
        (gam.cuda_built() and '' or ' (libgam was built without CUDA)'), 0)
end

-- ---- helpers ---------------------------------------------------------------------------
local here = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.'
local H = dofile(here .. '/helpers.lua')
local errmsg = dofile(here .. '/../helpers.lua').errmsg

local function contains(s, ...)
  for i = 1, select('#', ...) do
    local want = select(i, ...)
    assert(s:find(want, 1, true), string.format('%q does not mention %q', s, want))
  end
end

-- max |got - ref| / max |ref| (NaN in the same places counts as equal)
local function rel_error(ref, got) return H.list_error(ref:tolist(), got:tolist()) end

-- got (cuda) matches ref (cpu): device, shape, dtype, values
local function close(ref, got, what)
  assert.are.equal('cpu', ref:device(), what)
  assert.are.equal('cuda', got:device(), what .. ': result is not on cuda')
  assert.are.same(ref:shape(), got:shape(), what .. ': shape')
  assert.are.equal(ref:dtype(), got:dtype(), what .. ': dtype')
  if ref:dtype() ~= 'float32' then
    assert.are.same(ref:tolist(), got:tolist(), what .. ': values')
    return
  end
  local e = rel_error(ref, got)
  assert(e < TOL, string.format('%s: relative error %.3g (tolerance %g)', what, e, TOL))
end

-- Runs fn on copies of the cpu inputs on both devices and compares the
-- outputs, then backpropagates a random weighting of the float outputs and
-- compares the gradients of the float inputs.
local function both(name, fn, inputs, opts)
  opts = opts or {}
  gam.scope(function()
    local function leaves(dev)
      local r = {}
      for i, x in ipairs(inputs) do
        local y = x:to(dev):detach()
        if x:dtype() == 'float32' and not opts.nograd then y:requires_grad_(true) end
        r[i] = y
      end
      return r
    end
    local cin, gin = leaves('cpu'), leaves('cuda')
    local cout, gout = {fn(unpack(cin))}, {fn(unpack(gin))}
    assert.are.equal(#cout, #gout)
    for k = 1, #cout do close(cout[k], gout[k], name .. ': output ' .. k) end
    if opts.nograd then return end
    local lc, lg
    for k = 1, #cout do
      if cout[k]:dtype() == 'float32' and cout[k].requires_grad then
        local w = gam.randn(cout[k]:shape())
        local c, g = (cout[k] * w):sum(), (gout[k] * w:to('cuda')):sum()
        lc, lg = lc and lc + c or c, lg and lg + g or g
      end
    end
    if not lc then return end
    lc:backward()
    lg:backward()
    for i = 1, #cin do
      if cin[i].requires_grad then
        local gc, gg = cin[i].grad, gin[i].grad
        assert(gc ~= nil and gg ~= nil, name .. ': no gradient for input ' .. i)
        close(gc, gg, name .. ': gradient of input ' .. i)
      end
    end
  end)
end

local function randn(...) return gam.randn(...) end
local function positive(shape) return gam.rand(shape, {low = 0.5, high = 2}) end
local function long(v) return gam.tensor(v, {dtype = 'int64'}) end

before_each(function() gam.manual_seed(1234) end)

-- ---- creation, copies, conversions -------------------------------------------------------
describe('cuda tensors', function()
  it('move to the device and back unchanged, for every dtype', function()
    local f = randn({3, 5})
    assert.are.same(f:tolist(), f:to('cuda'):to('cpu'):tolist())
    local l = long{{-3, 7}, {2 ^ 40, -(2 ^ 40)}}
    assert.are.same(l:tolist(), l:cuda():cpu():tolist())
    local b = gam.tensor({0, 1, 255}, {dtype = 'uint8'})
    assert.are.same(b:tolist(), b:cuda():cpu():tolist())
    local d = f:cuda()
    assert.are.equal('cuda', d:device())
    assert.is_true(d:to('cuda').t == d.t) -- already there: the same engine tensor back
  end)

  it('zeros, ones, full, empty, rand and tensor{} are made on the device', function()
    assert.are.same({0, 0, 0}, gam.zeros({3}, {device = 'cuda'}):tolist())
    assert.are.same({1, 1}, gam.ones(2, {device = 'cuda'}):tolist())
    assert.are.same({7, 7}, gam.full({2}, 7, {device = 'cuda', dtype = 'int64'}):tolist())
    assert.are.same({2, 3}, gam.empty({2, 3}, {device = 'cuda'}):shape())
    local t = gam.tensor({{1, 2}, {3, 4}}, {device = 'cuda', requires_grad = true})
    assert.are.equal('cuda', t:device())
    assert.is_true(t.requires_grad)
    assert.is_nil(t:grad_fn()) -- a leaf on the device, not the result of a copy
    assert.are.equal('cuda', gam.arange(5, {device = 'cuda'}):device())
  end)

  it('item, fill_, clone, copy_ and allclose', function()
    local x = gam.tensor({2.5}, {device = 'cuda'})
    assert.are.equal(2.5, x:item())
    assert.are.equal(-7, gam.full({1}, -7, {dtype = 'int64', device = 'cuda'}):item())
    assert.are.equal(200, gam.full({}, 200, {dtype = 'uint8', device = 'cuda'}):item())
    local y = gam.zeros({4}, {device = 'cuda'}):fill_(3.25)
    assert.are.same({3.25, 3.25, 3.25, 3.25}, y:tolist())
    local z = y:clone()
    z:fill_(1)
    assert.are.same({3.25, 3.25, 3.25, 3.25}, y:tolist()) -- a clone owns its storage
    -- copy_ across devices and dtypes
    local c = gam.zeros({4}, {device = 'cuda'})
    c:copy_(gam.tensor{1, 2, 3, 4})
    assert.are.same({1, 2, 3, 4}, c:tolist())
    local h = gam.zeros({4}, {dtype = 'int64'})
    h:copy_(gam.tensor({1.9, -2.9, 3, 4}, {device = 'cuda'}))
    assert.are.same({1, -2, 3, 4}, h:tolist())
    assert.is_true(c:allclose(c:clone()))
    assert.is_false(c:allclose(c + 1))
    contains(errmsg(function() return c:allclose(gam.ones(4)) end), 'allclose', 'cpu', 'cuda')
    contains(errmsg(function() return gam.ones(2, {device = 'cuda'}):fill_(1 / 0) and
                                      gam.ones(2, {device = 'cuda', dtype = 'int64'}):fill_(1 / 0) end),
                'fill', 'int64')
  end)

  it('copy_ between overlapping views of one storage matches the cpu (memmove)', function()
    for _, dev in ipairs {'cpu', 'cuda'} do
      local a = gam.arange(10, {device = dev}):float()
      a:narrow(1, 1, 8):copy_(a:narrow(1, 3, 8))
      local b = gam.arange(10, {device = dev}):float()
      b:narrow(1, 3, 8):copy_(b:narrow(1, 1, 8))
      assert.are.equal(dev, a:device())
      assert.are.same({2, 3, 4, 5, 6, 7, 8, 9, 8, 9}, a:tolist())
      assert.are.same({0, 1, 0, 1, 2, 3, 4, 5, 6, 7}, b:tolist())
    end
  end)

  it('convert dtypes with the cpu rules', function()
    local v = gam.tensor{-3.7, -1.2, 0, 2.5, 300.9, 255.5, 1e10}
    for _, pair in ipairs {{'int64', 'float32'}, {'uint8', 'float32'}, {'uint8', 'int64'}, {'float32', 'int64'}} do
      local to, via = pair[1], pair[2]
      local ref = v:to(via):to(to)
      close(ref, v:cuda():to(via):to(to), 'to ' .. via .. ' then ' .. to)
    end
  end)

  it('print like cpu tensors, naming the device', function()
    local s = tostring(gam.tensor{1, 2}:cuda())
    contains(s, 'tensor([1., 2.]', 'device=cuda')
  end)
end)

-- ---- views, transpose, cat ------------------------------------------------------------------
describe('views and copies on cuda', function()
  it('reshape, flatten, narrow, select, clone, transpose (forward and backward)', function()
    both('reshape', function(x) return x:reshape(6, 4) end, {randn({2, 3, 4})})
    both('flatten', function(x) return x:flatten(2) end, {randn({2, 3, 4})})
    both('narrow', function(x) return x:narrow(1, 2, 3) end, {randn({5, 4})})
    both('select', function(x) return x:select(3) end, {randn({5, 4})})
    both('clone', function(x) return x:clone() end, {randn({7})})
    both('transpose', function(x) return x:t() end, {randn({37, 53})})
  end)

  it('cat along every dim, with gradients to each input', function()
    both('cat dim 1', function(a, b, c) return gam.cat({a, b, c}, 1) end, {randn({2, 3}), randn({4, 3}), randn({1, 3})})
    both('cat dim 2', function(a, b) return gam.cat({a, b}, 2) end, {randn({3, 2, 4}), randn({3, 5, 4})})
    both('cat dim 3', function(a, b) return gam.cat({a, b}, 3) end, {randn({2, 3, 1}), randn({2, 3, 6})})
    both('cat int64', function(a, b) return gam.cat({a, b}, 1) end, {long{1, 2}, long{3}}, {nograd = true})
  end)
end)

-- ---- elementwise --------------------------------------------------------------------------
describe('elementwise ops on cuda', function()
  local shapes = { -- pairs that broadcast
    {{3, 4}, {3, 4}}, {{3, 4}, {4}}, {{4}, {3, 4}}, {{3, 1}, {1, 4}}, {{2, 3, 4}, {3, 1}},
    {{2, 1, 4, 1}, {3, 1, 5}}, {{5}, {}}, {{}, {2, 2}}, {{1}, {6}}, {{2, 3, 1, 5}, {2, 1, 4, 5}},
    {{64, 32}, {64, 32}}, {{0, 3}, {3}},
  }
  it('add, sub, mul, div with broadcasting', function()
    for _, s in ipairs(shapes) do
      local tag = string.format('[%s] [%s]', table.concat(s[1], ','), table.concat(s[2], ','))
      both('add ' .. tag, function(a, b) return a + b end, {randn(s[1]), randn(s[2])})
      both('sub ' .. tag, function(a, b) return a - b end, {randn(s[1]), randn(s[2])})
      both('mul ' .. tag, function(a, b) return a * b end, {randn(s[1]), randn(s[2])})
      both('div ' .. tag, function(a, b) return a / b end, {randn(s[1]), positive(s[2])})
    end
  end)

  it('unary and scalar ops', function()
    local x, p = randn({3, 50}), positive({3, 50})
    both('neg', function(a) return -a end, {x})
    both('exp', function(a) return a:exp() end, {x})
    both('log', function(a) return a:log() end, {p})
    both('sqrt', function(a) return a:sqrt() end, {p})
    both('abs', function(a) return a:abs() end, {x})
    both('relu', function(a) return a:relu() end, {x})
    both('pow 2', function(a) return a:pow(2) end, {x})
    both('pow 1.5', function(a) return a:pow(1.5) end, {p})
    both('add scalar', function(a) return a + 2.5 end, {x})
    both('sub scalar', function(a) return a - 2.5 end, {x})
    both('mul scalar', function(a) return a * -3 end, {x})
    both('div scalar', function(a) return a / 4 end, {x})
    both('rsub scalar', function(a) return 1 - a end, {x})
    both('rdiv scalar', function(a) return 2 / a end, {p})
  end)

  it('a chain reusing its inputs accumulates gradients like the cpu', function()
    both('chain', function(a, b) return ((a * b + a):exp() / (b * b + 1)):sum(2):relu() end,
         {randn({4, 6}) * 0.5, randn({6}) * 0.5})
  end)

  it('add_ in place', function()
    local a, b = randn({100}), randn({100})
    local ga = a:cuda()
    ga:add_(b:cuda(), -0.5)
    close(a:clone():add_(b, -0.5), ga, 'add_')
  end)
end)

-- ---- reductions --------------------------------------------------------------------------
describe('reductions on cuda', function()
  it('sum and mean over everything and over one dim', function()
    local cases = { -- shapes that exercise every kernel layout
      {5}, {300000}, {3, 4}, {100, 10}, {3, 50000}, {20000, 3}, {2, 3, 4, 5}, {7, 1, 9}, {0, 4},
    }
    for _, s in ipairs(cases) do
      local tag = '[' .. table.concat(s, ',') .. ']'
      local x = randn(s)
      both('sum ' .. tag, function(a) return a:sum() end, {x})
      if x:numel() > 0 then both('mean ' .. tag, function(a) return a:mean() end, {x}) end
      for d = 1, #s do
        both('sum dim ' .. d .. ' ' .. tag, function(a) return a:sum(d) end, {x})
        both('sum keepdim ' .. d .. ' ' .. tag, function(a) return a:sum(d, true) end, {x})
        if s[d] > 0 then both('mean dim ' .. d .. ' ' .. tag, function(a) return a:mean(d) end, {x}) end
      end
    end
  end)

  it('max and argmax over everything and over one dim', function()
    for _, s in ipairs {{7}, {300000}, {4, 9}, {3, 50000}, {20000, 3}, {2, 5, 3}, {100, 10}} do
      local tag = '[' .. table.concat(s, ',') .. ']'
      local x = randn(s)
      both('max ' .. tag, function(a) return a:max() end, {x})
      for d = 1, #s do
        both('max dim ' .. d .. ' ' .. tag, function(a) return a:max(d) end, {x})
        both('max keepdim ' .. d .. ' ' .. tag, function(a) return a:max(d, true) end, {x})
        both('argmax dim ' .. d .. ' ' .. tag, function(a) return a:argmax(d) end, {x}, {nograd = true})
      end
    end
  end)

  it('argmax takes the first maximum and the first NaN, as the cpu', function()
    local nan = 0 / 0
    local x = gam.tensor{{1, 3, 3, 0}, {2, nan, 5, nan}, {-1, -1, -1, -1}}
    close(x:argmax(2), x:cuda():argmax(2), 'argmax ties and NaN')
    -- the same in one long line (the chunked kernel)
    local long_line = gam.zeros({100000})
    long_line:narrow(1, 70001, 1):fill_(5)
    long_line:narrow(1, 20001, 1):fill_(5)
    long_line:narrow(1, 90001, 1):fill_(5)
    assert.are.equal(20000, long_line:cuda():argmax(1):item())
    long_line:narrow(1, 95001, 1):fill_(nan)
    long_line:narrow(1, 60001, 1):fill_(nan)
    assert.are.equal(60000, long_line:cuda():argmax(1):item())
  end)

  it('the same input gives the same sum bits every time', function()
    local x = randn({1000003}):cuda()
    local a = x:sum():item()
    for _ = 1, 5 do assert.are.equal(a, x:sum():item()) end
  end)
end)

-- ---- linear algebra ------------------------------------------------------------------------
describe('matmul and linear on cuda (cuBLAS, no TF32)', function()
  it('matmul of several shapes', function()
    for _, s in ipairs {{2, 3, 4}, {37, 53, 29}, {128, 256, 64}, {1, 100, 1}, {5, 0, 3}} do
      both(string.format('matmul %dx%dx%d', s[1], s[2], s[3]), function(a, b) return a:matmul(b) end,
           {randn({s[1], s[2]}), randn({s[2], s[3]})})
    end
  end)

  it('linear with and without bias', function()
    both('linear', function(x, w, b) return F.linear(x, w, b) end, {randn({64, 100}), randn({30, 100}), randn({30})})
    both('linear no bias', function(x, w) return F.linear(x, w) end, {randn({17, 9}), randn({5, 9})})
  end)
end)

-- ---- softmax, gather, losses -------------------------------------------------------------
describe('softmax, gather and losses on cuda', function()
  it('softmax and log_softmax along every dim', function()
    for _, s in ipairs {{8, 10}, {5, 7, 3}, {4, 1000}} do
      local x = randn(s) * 3
      for d = 1, #s do
        local tag = string.format('[%s] dim %d', table.concat(s, ','), d)
        both('softmax ' .. tag, function(a) return a:softmax(d) end, {x})
        both('log_softmax ' .. tag, function(a) return a:log_softmax(d) end, {x})
      end
    end
  end)

  it('gather along a dim, gradients summed over repeated indices', function()
    both('gather dim 2', function(a, i) return a:gather(2, i) end,
         {randn({4, 5}), long{{0, 4, 4}, {1, 1, 1}, {2, 0, 3}, {4, 4, 0}}})
    both('gather dim 1', function(a, i) return a:gather(1, i) end,
         {randn({3, 2}), long{{2, 0}, {2, 2}, {0, 1}, {1, 1}}})
    contains(errmsg(function() return randn({2, 3}):cuda():gather(2, long{{0}, {3}}:cuda()) end),
             'gather', 'index value 3', '[0, 3)')
  end)

  it('cross_entropy and smooth_cross_entropy', function()
    local logits, target = randn({32, 10}) * 2, gam.randint(0, 10, {32})
    both('cross_entropy', function(x, t) return F.cross_entropy(x, t) end, {logits, target})
    both('smooth_cross_entropy', function(x, t) return F.smooth_cross_entropy(x, t, 0.1) end, {logits, target})
    both('mean smooth_cross_entropy', function(x, t) return F.smooth_cross_entropy(x, t, 0.2):mean() end,
         {logits, target})
    contains(errmsg(function() return F.cross_entropy(randn({3, 4}):cuda(), long{0, 7, 1}:cuda()) end),
             'cross_entropy', 'target 7', 'sample 2', '[0, 4)')
  end)
end)

-- ---- autograd across devices ---------------------------------------------------------------
describe('autograd with cuda tensors', function()
  it('gradients flow back through to() to the other device', function()
    local x = gam.tensor({1, -2, 3}, {requires_grad = true})
    local y = x:to('cuda')
    assert.are.equal('to', y:grad_fn())
    ;(y * y):sum():backward()
    assert.are.equal('cpu', x.grad:device())
    assert.are.same({2, -4, 6}, x.grad:tolist())
    local z = gam.tensor({1, 2}, {device = 'cuda', requires_grad = true})
    ;(z:to('cpu') * 3):sum():backward()
    assert.are.equal('cuda', z.grad:device())
    assert.are.same({3, 3}, z.grad:tolist())
  end)

  it('backward with an explicit gradient and gradients accumulated over two backwards', function()
    local x = gam.tensor({1, 2, 3}, {device = 'cuda', requires_grad = true})
    local y = x * x
    y:backward(gam.tensor({1, 1, 2}, {device = 'cuda'}))
    ;(x * 2):sum():backward()
    assert.are.same({4, 6, 14}, x.grad:tolist())
    contains(errmsg(function() (x * x):backward(gam.ones(3)) end), 'backward', 'cpu', 'cuda')
  end)

  it('an MLP of nn modules moved to cuda matches its cpu twin', function()
    gam.manual_seed(3)
    local nn = gam.nn
    local make = function()
      gam.manual_seed(3)
      return nn.Sequential{nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 5)}
    end
    local mc, mg = make(), make():to('cuda')
    local x, t = randn({16, 12}), gam.randint(0, 5, {16})
    local lc = F.smooth_cross_entropy(mc(x), t, 0.1):mean()
    local lg = F.smooth_cross_entropy(mg(x:cuda()), t:cuda(), 0.1):mean()
    close(lc, lg, 'mlp loss')
    lc:backward()
    lg:backward()
    local pc, pg = mc:parameters(), mg:parameters()
    for i = 1, #pc do close(pc[i].grad, pg[i].grad, 'mlp gradient ' .. i) end
  end)
end)

-- ---- errors, RNG, memory ------------------------------------------------------------------
describe('cuda errors', function()
  it('mixing devices in one op is a clear error', function()
    local a, b = gam.ones(2, 2), gam.ones(2, 2):cuda()
    contains(errmsg(function() return a + b end), 'add: operands are on cpu and cuda')
    contains(errmsg(function() return b * a end), 'mul: operands are on cuda and cpu')
    contains(errmsg(function() return a:matmul(b) end), 'matmul: operands are on cpu and cuda')
    contains(errmsg(function() return F.linear(b, a) end), 'linear', 'cuda', 'cpu')
    contains(errmsg(function() return gam.cat({a, b}) end), 'cat', 'tensor 2 is on cuda')
    contains(errmsg(function() return F.cross_entropy(b, long{0, 1}) end), 'cross_entropy', 'cuda', 'cpu')
    contains(errmsg(function() return b:add_(a) end), 'add_', 'cuda', 'cpu')
  end)

  it('every op has its entry in the cuda backend table: none says "no cuda implementation"', function()
    local x, w, b = randn({2, 3, 6, 6}):cuda(), randn({4, 3, 3, 3}):cuda(), randn({4}):cuda()
    local m, v = gam.zeros({3}):cuda(), gam.ones({3}):cuda()
    local logits, target = randn({4, 5}):cuda(), long{0, 1, 4, 2}:cuda()
    local calls = {
      conv2d = function() return F.conv2d(x, w, b, {padding = 1}) end,
      batch_norm = function() return F.batch_norm(x, m, v, nil, nil, true, 0.1, 1e-5) end,
      max_pool2d = function() return F.max_pool2d(x, 2) end,
      avg_pool2d = function() return F.avg_pool2d(x, 2) end,
      adaptive_avg_pool2d = function() return F.adaptive_avg_pool2d(x, 1) end,
      dropout = function() return F.dropout(x, 0.5, true) end,
      cross_entropy = function() return F.cross_entropy(logits, target) end,
      log_softmax = function() return F.log_softmax(logits, 2) end,
      matmul = function() return logits:matmul(logits:t()) end,
      max = function() return logits:max() end,
      cat = function() return gam.cat({logits, logits}, 1) end,
    }
    for name, call in pairs(calls) do
      local ok, err = pcall(call)
      assert(ok, name .. ': ' .. tostring(err))
    end
  end)

  it('running out of device memory is an error naming the request, and the device still works', function()
    local e = errmsg(function() return gam.empty({2 ^ 38}, {device = 'cuda'}) end)
    contains(e, 'out of memory', 'cuda', '1099511627776 bytes', '[274877906944]')
    assert.are.equal(4, gam.ones({4}, {device = 'cuda'}):sum():item())
  end)
end)

describe('random numbers on cuda', function()
  it('are drawn by the seeded generator: the same values as on the cpu, reproducibly', function()
    gam.manual_seed(7)
    local a = gam.randn({1001}, {device = 'cuda'})
    local ua = gam.rand({10}, {device = 'cuda'})
    local ia = gam.randint(0, 100, {10}, {device = 'cuda'})
    gam.manual_seed(7)
    local b, ub, ib = gam.randn({1001}), gam.rand({10}), gam.randint(0, 100, {10})
    assert.are.equal('cuda', a:device())
    assert.are.same(b:tolist(), a:tolist())
    assert.are.same(ub:tolist(), ua:tolist())
    assert.are.same(ib:tolist(), ia:tolist())
    gam.manual_seed(7)
    assert.are.same(a:tolist(), gam.randn({1001}, {device = 'cuda'}):tolist())
  end)
end)

describe('device memory', function()
  local function settle() collectgarbage(); collectgarbage() end

  it('returns to its baseline every iteration of a training loop in a scope', function()
    settle()
    gam.manual_seed(0)
    local ps = gam.scope(function()
      local t = {
        w1 = (randn({32, 8}) * 0.3):cuda():requires_grad_(),
        b1 = gam.zeros({32}, {device = 'cuda', requires_grad = true}),
        w2 = (randn({4, 32}) * 0.3):cuda():requires_grad_(),
        b2 = gam.zeros({4}, {device = 'cuda', requires_grad = true}),
      }
      for _, p in pairs(t) do p.grad = gam.zeros(p:shape(), {device = 'cuda'}) end
      return t
    end)
    local x, y = randn({16, 8}):cuda(), gam.randint(0, 4, {16}):cuda()
    local m0 = gam.memory()
    local first, last
    for it = 1, 500 do
      local loss = gam.scope(function()
        local h = F.linear(x, ps.w1, ps.b1):relu()
        local l = F.smooth_cross_entropy(F.linear(h, ps.w2, ps.b2), y, 0.1):mean()
        l:backward()
        gam.no_grad(function()
          for _, p in pairs(ps) do
            p:add_(p.grad, -0.2)
            p.grad:zero_()
          end
        end)
        return l:item()
      end)
      first, last = first or loss, loss
      local m = gam.memory()
      if m.device_live_bytes ~= m0.device_live_bytes or m.live_tensors ~= m0.live_tensors then
        error(string.format('iteration %d: %d device bytes / %d tensors live, baseline %d / %d', it,
                            m.device_live_bytes, m.live_tensors, m0.device_live_bytes, m0.live_tensors))
      end
    end
    assert(last < first * 0.5, string.format('loss went from %g to %g', first, last))
    assert.is_true(gam.memory().device_cached_bytes > 0) -- freed blocks are cached for reuse
    gam.empty_cache()
    assert.are.equal(0, gam.memory().device_cached_bytes)
  end)

  it('counts device bytes in live_bytes and device_live_bytes', function()
    settle()
    local before = gam.memory()
    local t = gam.empty({1024, 1024}, {device = 'cuda'})
    local after = gam.memory()
    assert.is_true(after.device_live_bytes - before.device_live_bytes >= 4 * 1024 * 1024)
    assert.are.equal(after.device_live_bytes - before.device_live_bytes, after.live_bytes - before.live_bytes)
    gam.release(t)
    assert.are.equal(before.device_live_bytes, gam.memory().device_live_bytes)
  end)

  it('flattens cuda parameters into a flat arena on the device', function()
    local nn = gam.nn
    gam.manual_seed(5)
    local m = nn.Linear(6, 3):to('cuda')
    local w0 = m:parameters()[1]:to('cpu')
    local flat, flat_grad = m:flat_parameters()
    assert.are.equal('cuda', flat:device())
    assert.are.equal('cuda', flat_grad:device())
    assert.are.equal(21, flat:numel())
    assert.are.same(w0:tolist(), m:parameters()[1]:to('cpu'):tolist())
    assert.are.same(w0:reshape(-1):tolist(), flat:narrow(1, 1, 18):tolist())
  end)
end)
