-- The layers on the CUDA backend against the cpu backend: convolution (cuDNN,
-- FMA math: no TF32), batch norm (cuDNN in training, plain kernels in
-- evaluation) with PyTorch's running-statistic semantics, max / average /
-- adaptive pooling (plain kernels: the cpu's bits exactly) and dropout (masks
-- from Philox4x32-10 on the device: their distribution and reproducibility). Forward and backward on
-- random inputs; relative error under 1e-4 (max |cuda - cpu| / max |cpu|).
-- Needs a GPU: `make test-cuda`.
local gam = require 'gam'
local F = gam.F
local here = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.'
local H = dofile(here .. '/helpers.lua')
local DEV, both, close = H.DEV, H.both, H.close

H.require_device('tests/cuda/layers_cuda.lua')

local randn = gam.randn

before_each(function() gam.manual_seed(4321) end)

describe('conv2d on ' .. DEV, function()
  local cases = { -- x, w, options, bias
    {{2, 3, 8, 8}, {4, 3, 3, 3}, {padding = 1}, true},
    {{2, 4, 9, 9}, {6, 4, 3, 3}, {stride = 2, padding = 1}, false},
    {{2, 8, 8, 8}, {16, 8, 1, 1}, {stride = 2}, false},
    {{1, 2, 10, 10}, {3, 2, 3, 3}, {padding = 2, dilation = 2}, true},
    {{2, 3, 7, 5}, {5, 3, 3, 2}, {stride = {2, 1}, padding = {1, 0}}, true},
    {{4, 1, 28, 28}, {32, 1, 3, 3}, {padding = 1}, true},        -- a stem: one input channel
    {{8, 64, 16, 16}, {64, 64, 3, 3}, {padding = 1}, false},     -- a ResNet layer
    {{4, 128, 8, 8}, {256, 128, 3, 3}, {stride = 2, padding = 1}, false},
  }
  it('forward and backward match the cpu (x, weight and bias gradients)', function()
    for _, c in ipairs(cases) do
      local tag = string.format('conv2d x%s w%s', H.shape_str(c[1]), H.shape_str(c[2]))
      local inputs = {randn(c[1]), randn(c[2]) * 0.2}
      if c[4] then inputs[3] = randn({c[2][1]}) end
      both(tag, function(t) return F.conv2d(t[1], t[2], t[3], c[3]) end, inputs)
    end
  end)

  it('gives the same bits every time (deterministic algorithms), on a cached plan', function()
    local x = randn({4, 16, 12, 12}):to(DEV):requires_grad_(true)
    local w = (randn({32, 16, 3, 3}) * 0.1):to(DEV):requires_grad_(true)
    local function run()
      return gam.scope(function()
        x.grad, w.grad = nil, nil
        local y = F.conv2d(x, w, nil, {padding = 1})
        y:sum():backward()
        return {y:tolist(), x.grad:tolist(), w.grad:tolist()}
      end)
    end
    local a = run()
    for _ = 1, 3 do assert.are.same(a, run()) end
  end)

  it('gam.cudnn: benchmark and non-deterministic modes still match the cpu', function()
    if DEV == 'cpu' then return end
    local x, w = randn({8, 64, 16, 16}), randn({64, 64, 3, 3}) * 0.1
    for _, mode in ipairs {{true, true}, {true, false}, {false, false}} do
      gam.cudnn.benchmark, gam.cudnn.deterministic = mode[1], mode[2]
      local ok, err = pcall(both, string.format('conv2d benchmark=%s deterministic=%s', mode[1], mode[2]),
                            function(t) return F.conv2d(t[1], t[2], nil, {padding = 1}) end, {x, w},
                            {tol = mode[2] and 1e-4 or 1e-3})
      gam.cudnn.benchmark, gam.cudnn.deterministic = false, true
      assert(ok, err)
    end
  end)

  it('a batch over 2^31 elements runs in chunks of images (dw summed over the chunks)', function()
    if DEV == 'cpu' then return end
    -- x [n, 2, 1, 1] of ones with 2n > 2^31; y = w0 + w1 everywhere; dw = n per input channel
    local n = 1100000000
    gam.scope(function()
      local x = gam.ones({n, 2, 1, 1}, {device = DEV})
      local w = gam.tensor({0.25, -0.5}):reshape({1, 2, 1, 1}):to(DEV):requires_grad_(true)
      local y = F.conv2d(x, w)
      assert.are.same({n, 1, 1, 1}, y:shape())
      assert.are.equal(0.25, (y * -1):max():item())  -- (no min: the largest of -y)
      assert.are.equal(-0.25, y:max():item())
      y:sum():backward()
      for _, v in ipairs(w.grad:reshape({2}):tolist()) do
        assert(math.abs(v - n) / n < 1e-3, string.format('dw %.6g, expected %d', v, n))
      end
    end)
    gam.empty_cache()
  end)

  it('reports the cuDNN workspace in gam.memory() and gives it back in empty_cache', function()
    if DEV == 'cpu' then return end
    local function run()
      gam.scope(function()
        local x = randn({16, 64, 32, 32}):to(DEV):requires_grad_(true)
        local w = (randn({64, 64, 3, 3}) * 0.1):to(DEV):requires_grad_(true)
        F.conv2d(x, w, nil, {padding = 1}):sum():backward()
      end)
      gam.synchronize()
    end
    run()
    local m = gam.memory()
    assert.is_true(m.device_workspace_bytes >= 0 and m.device_workspace_bytes <= m.device_live_bytes)
    gam.empty_cache()
    m = gam.memory()
    assert.are.equal(0, m.device_workspace_bytes)
    assert.are.equal(0, m.device_cached_bytes)
    run() -- grows it again as needed
    assert.is_true(gam.memory().device_workspace_bytes <= gam.memory().device_live_bytes)
  end)

  it('an empty batch gives an empty output and zero weight gradients', function()
    local x = gam.zeros({0, 3, 5, 5}, {device = DEV})
    local w = randn({2, 3, 3, 3}):to(DEV):requires_grad_(true)
    local y = F.conv2d(x, w, nil, {padding = 1})
    assert.are.same({0, 2, 5, 5}, y:shape())
    assert.are.equal(DEV, y:device())
    y:sum():backward()
    assert.are.same(gam.zeros({2, 3, 3, 3}):tolist(), w.grad:tolist())
  end)

  it('refuses mixed devices and bad shapes with clear errors', function()
    if DEV == 'cpu' then return end
    local x, w = randn({1, 2, 5, 5}), randn({3, 2, 3, 3})
    H.contains(H.errmsg(F.conv2d, x:cuda(), w), 'conv2d: operands are on cuda and cpu')
    H.contains(H.errmsg(F.conv2d, x:cuda(), w:cuda(), gam.zeros({3})), 'conv2d', 'cuda', 'cpu')
    H.contains(H.errmsg(F.conv2d, x:cuda(), randn({3, 4, 3, 3}):cuda()), 'input has 2 channels, weight expects 4')
  end)
end)

describe('batch_norm on ' .. DEV, function()
  local function stats(c)
    return gam.rand({c}, {low = -0.5, high = 0.5}), gam.rand({c}, {low = 0.5, high = 2})
  end

  it('training: output, gradients and the running statistics (unbiased variance) match the cpu', function()
    for _, shape in ipairs {{4, 3, 5, 5}, {8, 16, 4, 4}, {6, 5}, {3, 4, 7}, {128, 8, 2, 2}} do
      local c = shape[2]
      local rm, rv = stats(c)
      local x = randn(shape) * 2 + 0.5
      local w, b = gam.rand({c}, {low = 0.5, high = 1.5}), randn({c})
      local rms, rvs = {}, {}
      both('batch_norm train ' .. H.shape_str(shape), function(t, dev)
        local m, v = gam.keep(rm:to(dev):clone()), gam.keep(rv:to(dev):clone())
        rms[dev], rvs[dev] = m, v
        return F.batch_norm(t[1], m, v, t[2], t[3], true, 0.1, 1e-5)
      end, {x, w, b})
      close(rms.cpu, rms[DEV], 'running_mean ' .. H.shape_str(shape))
      close(rvs.cpu, rvs[DEV], 'running_var ' .. H.shape_str(shape))
      -- PyTorch's rule, computed here in double: (1 - m) r + m unbiased batch variance
      local xs, n = x:tolist(), #x:tolist()
      local per = n / c
      local inner = per / shape[1]
      local r = rvs[DEV]:tolist()
      for ch = 0, c - 1 do
        local s, ss = 0, 0
        for i = 0, shape[1] - 1 do
          for k = 0, inner - 1 do s = s + xs[(i * c + ch) * inner + k + 1] end
        end
        local mu = s / per
        for i = 0, shape[1] - 1 do
          for k = 0, inner - 1 do ss = ss + (xs[(i * c + ch) * inner + k + 1] - mu) ^ 2 end
        end
        local want = 0.9 * rv:tolist()[ch + 1] + 0.1 * ss / (per - 1)
        assert(math.abs(r[ch + 1] - want) <= 1e-5 * math.abs(want),
               string.format('running_var[%d] = %.8g, PyTorch rule %.8g', ch, r[ch + 1], want))
      end
    end
  end)

  it('momentum 0 leaves the running statistics bit for bit (also for a NaN batch)', function()
    local rm, rv = stats(6)
    local m, v = rm:to(DEV):clone(), rv:to(DEV):clone()
    local before_m, before_v = m:tolist(), v:tolist()
    F.batch_norm(randn({4, 6, 3, 3}):to(DEV), m, v, nil, nil, true, 0, 1e-5)
    assert.are.same(before_m, m:tolist())
    assert.are.same(before_v, v:tolist())
    local x = randn({4, 6, 3, 3})
    x:narrow(1, 2, 1):fill_(0 / 0)
    F.batch_norm(x:to(DEV), m, v, nil, nil, true, 0, 1e-5)
    assert.are.same(before_m, m:tolist())
    assert.are.same(before_v, v:tolist())
  end)

  it('without affine parameters and without running statistics', function()
    both('batch_norm no affine', function(t) return F.batch_norm(t[1], nil, nil, nil, nil, true, 0.1, 1e-3) end,
         {randn({5, 4, 3, 3})})
  end)

  it('evaluation uses the running statistics (forward and backward)', function()
    local rm, rv = stats(7)
    both('batch_norm eval', function(t, dev)
      return F.batch_norm(t[1], rm:to(dev), rv:to(dev), t[2], t[3], false, 0.1, 1e-5)
    end, {randn({6, 7, 4, 5}), gam.rand({7}, {low = 0.5, high = 1.5}), randn({7})})
    both('batch_norm eval [N,C]', function(t, dev)
      return F.batch_norm(t[1], rm:to(dev), rv:to(dev), t[2], nil, false, 0.1, 1e-5)
    end, {randn({300, 7}), gam.rand({7}, {low = 0.5, high = 1.5})})
  end)

  it('nn.BatchNorm2d moved to the device keeps its buffers there and updates them like the cpu', function()
    gam.manual_seed(8)
    local a = gam.nn.BatchNorm2d(5)
    gam.manual_seed(8)
    local b = gam.nn.BatchNorm2d(5):to(DEV)
    assert.are.equal(DEV, b.running_mean:device())
    assert.are.equal(DEV, b.weight:device())
    for step = 1, 3 do
      local x = randn({4, 5, 6, 6}) * step
      a(x)
      b(x:to(DEV))
    end
    close(a.running_mean, b.running_mean, 'running_mean after 3 steps')
    close(a.running_var, b.running_var, 'running_var after 3 steps')
  end)
end)

describe('pooling on ' .. DEV .. ' (the cpu bits exactly)', function()
  it('max pooling with strides, padding, ceil_mode and NaN', function()
    local cases = {{{2, 3, 8, 8}, 2}, {{2, 3, 9, 7}, 3, 2, 1}, {{1, 2, 7, 7}, 3, 2, 0, true},
                   {{2, 2, 6, 5}, {3, 2}, {2, 1}, {1, 0}, true}, {{1, 1, 5, 5}, 2, 1}}
    for _, c in ipairs(cases) do
      local tag = 'max_pool2d ' .. H.shape_str(c[1])
      both(tag, function(t) return F.max_pool2d(t[1], c[2], c[3], c[4], c[5]) end, {randn(c[1])}, {exact = true})
    end
    local nan = 0 / 0
    local x = gam.tensor{{{{1, nan, 3, 4}, {5, 6, 7, 8}, {9, 10, nan, 12}, {13, 14, 15, 16}}}}
    both('max_pool2d NaN', function(t) return F.max_pool2d(t[1], 2) end, {x}, {exact = true})
  end)

  it('average pooling with and without count_include_pad, ceil_mode and padding', function()
    for _, include in ipairs {true, false} do
      for _, c in ipairs {{{2, 3, 8, 8}, 2}, {{2, 3, 9, 7}, 3, 2, 1, false}, {{1, 2, 7, 7}, 3, 2, 1, true},
                          {{2, 4, 8, 8}, 2, 2, 0, true}, {{1, 2, 5, 6}, {3, 2}, {2, 2}, {1, 1}, true}} do
        local tag = string.format('avg_pool2d %s include_pad=%s', H.shape_str(c[1]), tostring(include))
        both(tag, function(t) return F.avg_pool2d(t[1], c[2], c[3], c[4], c[5], include) end, {randn(c[1])},
             {exact = true})
      end
    end
  end)

  it('adaptive average pooling to several sizes', function()
    for _, c in ipairs {{{2, 3, 4, 4}, 1}, {{2, 3, 7, 7}, 3}, {{1, 2, 8, 9}, {5, 4}}, {{2, 2, 3, 3}, 5}} do
      both('adaptive_avg_pool2d ' .. H.shape_str(c[1]), function(t) return F.adaptive_avg_pool2d(t[1], c[2]) end,
           {randn(c[1])}, {exact = true})
    end
  end)
end)

describe('dropout on ' .. DEV, function()
  -- The cuda masks come from Philox4x32-10 on the device (one draw of the
  -- engine's generator as the key), the cpu's from the host generator: the
  -- devices' masks differ, so their distribution and reproducibility are tested.
  local ffi = require 'ffi'
  local C = require 'gam.lib'
  local bit = require 'bit'

  it('keeps 1-p of the elements, scaled by 1/(1-p); the gradient is the mask', function()
    local n = 1000000
    for _, p in ipairs {0.1, 0.3, 0.5, 0.9} do
      gam.scope(function()
        local x = gam.ones({1000, 1000}, {device = DEV}):requires_grad_(true)
        local y = F.dropout(x, p, true)
        local scale = tonumber(ffi.new('float', 1 / (1 - p)))
        assert.are.equal(0, (y * -1):max():item())  -- the smallest element is 0
        assert.are.equal(scale, y:max():item())
        local kept = 0  -- per row (sums small enough to be exact to 1e-4 in float32)
        for _, r in ipairs(y:sum(2):tolist()) do
          local c = r / scale
          assert(math.abs(c - math.floor(c + 0.5)) < 1e-3, 'values other than 0 and 1/(1-p)')
          kept = kept + math.floor(c + 0.5)
        end
        local sigma = math.sqrt(p * (1 - p) / n)
        assert(math.abs(kept / n - (1 - p)) < 6 * sigma,
               string.format('p = %g: kept %.5f of the elements, expected %.5f', p, kept / n, 1 - p))
        y:sum():backward()
        assert.are.equal(0, (x.grad - y):abs():max():item())
      end)
    end
  end)

  it('is reproducible for a seed, differs between seeds and between calls', function()
    local x = gam.ones({257, 33}, {device = DEV})
    local function mask(seed)
      if seed then gam.manual_seed(seed) end
      return F.dropout(x, 0.5, true):tolist()
    end
    local a = mask(99)
    assert.are.same(a, mask(99))
    assert.are_not.same(a, mask(100))
    gam.manual_seed(99)
    local first, second = mask(), mask()
    assert.are.same(a, first)
    assert.are_not.same(first, second)
  end)

  it('follows Philox4x32-10 keyed by the next 64-bit draw of the generator', function()
    if DEV == 'cpu' then return end  -- the cpu draws from the host generator
    gam.manual_seed(2024)
    local s = ffi.new('uint64_t[2]')
    assert.are.equal(0, C.gam_rng_get_state(s))
    local key64 = bit.rol(s[0] + s[1], 17) + s[0]  -- the engine's xoroshiro128++ draw
    local n, p = 10, 0.4
    local y = F.dropout(gam.ones({n}, {device = DEV}), p, true):tolist()
    local key = ffi.new('uint32_t[2]', {tonumber(bit.band(key64, 0xffffffffULL)), tonumber(bit.rshift(key64, 32))})
    local pf, scale = tonumber(ffi.new('float', p)), tonumber(ffi.new('float', 1 / (1 - p)))
    for q = 0, math.ceil(n / 4) - 1 do
      local r = ffi.new('uint32_t[4]')
      C.gam_philox4x32_10(ffi.new('uint32_t[4]', {q, 0, 0, 0}), key, r)
      for j = 0, 3 do
        local i = 4 * q + j
        if i < n then
          local u = math.floor(r[j] / 256) / 16777216
          assert.are.equal(u >= pf and scale or 0, y[i + 1], 'element ' .. i)
        end
      end
    end
  end)

  it('is the identity when not training', function()
    local x = randn({3, 3}):to(DEV)
    assert.is_true(F.dropout(x, 0.5, false).t == x.t)
  end)
end)
