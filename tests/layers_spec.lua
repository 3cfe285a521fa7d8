-- Layer ops: conv2d, batch_norm, max/avg/adaptive pooling, dropout.
-- Gradients are checked against central finite differences of
-- L = sum(f(inputs) * r) (r fixed random weights, L summed in double on the
-- Lua side); forwards against a naive Lua reference, hand-computed statistics
-- and values computed once by PyTorch (tests/fixtures/golden_layers.lua).
local gam = require 'gam'
local F = gam.F

local here = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.'

-- ---- helpers ------------------------------------------------------------------
local function from(spec) return gam.tensor(spec.data):reshape(spec.shape) end


local function numel(shape)
  local n = 1
  for _, s in ipairs(shape) do n = n * s end
  return n
end

-- deterministic pseudo-random data in [-1, 1) (LuaJIT's generator, seeded per call)
local function rand_data(shape, seed, scale)
  math.randomseed(seed)
  local d = {}
  for i = 1, numel(shape) do d[i] = (math.random() * 2 - 1) * (scale or 1) end
  return {shape = shape, data = d}
end

-- distinct values (gaps of 0.1), shuffled deterministically: no ties for max pooling
local function distinct_data(shape, seed)
  local n = numel(shape)
  local d = {}
  for i = 1, n do d[i] = (i - n / 2) * 0.1 end
  math.randomseed(seed)
  for i = n, 2, -1 do
    local j = math.random(i)
    d[i], d[j] = d[j], d[i]
  end
  return {shape = shape, data = d}
end

local function assert_close(got, want, rtol, atol, what)
  assert(#got == #want, string.format('%s: %d values, expected %d', what, #got, #want))
  for i = 1, #want do
    local d = math.abs(got[i] - want[i])
    if not (d <= atol + rtol * math.abs(want[i])) then
      error(string.format('%s: element %d is %.7g, expected %.7g', what, i, got[i], want[i]), 2)
    end
  end
end

local function same_shape(t, shape, what)
  assert.are.same(shape, t:shape(), what)
end

-- Checks the gradients of f(tensors) for every input spec without .const.
-- inputs: list of {shape=, data=, const=}; o: {eps, rtol, atol}
local function grad_check(f, inputs, o)
  o = o or {}
  local eps, rtol, atol = o.eps or 1e-2, o.rtol or 1e-2, o.atol or 1e-3
  local function build(datas)
    local ts = {}
    for k, s in ipairs(inputs) do ts[k] = gam.tensor(datas[k]):reshape(s.shape) end
    return ts
  end
  local datas = {}
  for k, s in ipairs(inputs) do datas[k] = s.data end
  local ts = build(datas)
  for k, s in ipairs(inputs) do
    if not s.const then ts[k]:requires_grad_(true) end
  end
  local y = f(ts)
  local r = rand_data(y:shape(), 4242).data
  y:backward(gam.tensor(r):reshape(y:shape()))
  local function loss()
    return gam.no_grad(function()
      local vals = f(build(datas)):tolist()
      local s = 0
      for i = 1, #vals do s = s + vals[i] * r[i] end
      return s
    end)
  end
  local checked = 0
  for k, s in ipairs(inputs) do
    if not s.const then
      local analytic = ts[k].grad:tolist()
      local numeric = {}
      local d = {}
      for i = 1, #s.data do d[i] = s.data[i] end
      datas[k] = d
      for i = 1, #d do
        local v = d[i]
        d[i] = v + eps
        local lp = loss()
        d[i] = v - eps
        local lm = loss()
        d[i] = v
        numeric[i] = (lp - lm) / (2 * eps)
      end
      datas[k] = s.data
      assert_close(analytic, numeric, rtol, atol, 'gradient of input ' .. k)
      checked = checked + 1
    end
  end
  assert(checked > 0, 'grad_check: nothing to check')
end

local function expect_error(pattern, fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, 'expected an error matching "' .. pattern .. '"')
  assert(tostring(err):find(pattern, 1, true),
         string.format('error "%s" does not contain "%s"', tostring(err), pattern))
end

-- naive conv2d on flat arrays, PyTorch's definition
local function conv_ref(x, w, b, st, pad, dil)
  local N, C, H, W = unpack(x.shape)
  local O, _, KH, KW = unpack(w.shape)
  local OH = math.floor((H + 2 * pad[1] - dil[1] * (KH - 1) - 1) / st[1]) + 1
  local OW = math.floor((W + 2 * pad[2] - dil[2] * (KW - 1) - 1) / st[2]) + 1
  local y = {}
  for n = 0, N - 1 do
    for o = 0, O - 1 do
      for i = 0, OH - 1 do
        for j = 0, OW - 1 do
          local s = b and b.data[o + 1] or 0
          for c = 0, C - 1 do
            for p = 0, KH - 1 do
              local ih = i * st[1] - pad[1] + p * dil[1]
              if ih >= 0 and ih < H then
                for q = 0, KW - 1 do
                  local iw = j * st[2] - pad[2] + q * dil[2]
                  if iw >= 0 and iw < W then
                    s = s + x.data[((n * C + c) * H + ih) * W + iw + 1] * w.data[((o * C + c) * KH + p) * KW + q + 1]
                  end
                end
              end
            end
          end
          y[#y + 1] = s
        end
      end
    end
  end
  return {shape = {N, O, OH, OW}, data = y}
end

local function pair(v) return type(v) == 'table' and v or {v, v} end

-- ---- conv2d ----------------------------------------------------------------------
describe('conv2d', function()
  local variants = {
    {name = 'defaults', x = {2, 3, 5, 6}, w = {4, 3, 3, 3}, bias = true, o = {}},
    {name = 'stride 2 padding 1', x = {2, 3, 7, 6}, w = {4, 3, 3, 3}, bias = true, o = {stride = 2, padding = 1}},
    {name = 'dilation 2 padding 2, no bias', x = {1, 2, 7, 7}, w = {3, 2, 3, 3}, bias = false,
     o = {padding = 2, dilation = 2}},
    {name = 'per-axis stride/padding/dilation', x = {2, 2, 6, 7}, w = {3, 2, 2, 3}, bias = true,
     o = {stride = {2, 1}, padding = {0, 1}, dilation = {1, 2}}},
    {name = 'one input channel (plain-layout backward)', x = {2, 1, 6, 6}, w = {4, 1, 3, 3}, bias = true,
     o = {padding = 1}},
    {name = '16 channels (blocked layouts)', x = {2, 16, 4, 4}, w = {16, 16, 3, 3}, bias = false,
     o = {padding = 1}},
    {name = '1x1 stride 2', x = {2, 8, 5, 5}, w = {16, 8, 1, 1}, bias = false, o = {stride = 2}},
  }

  for vi, v in ipairs(variants) do
    it('forward matches the definition: ' .. v.name, function()
      local x, w = rand_data(v.x, vi), rand_data(v.w, 100 + vi, 0.5)
      local b = v.bias and rand_data({v.w[1]}, 200 + vi) or nil
      local y = F.conv2d(from(x), from(w), b and from(b) or nil, v.o)
      local ref = conv_ref(x, w, b, pair(v.o.stride or 1), pair(v.o.padding or 0), pair(v.o.dilation or 1))
      same_shape(y, ref.shape, 'output shape')
      assert_close(y:tolist(), ref.data, 1e-5, 1e-5, 'conv2d output')
    end)

    it('gradients of x, w' .. (v.bias and ', b' or '') .. ': ' .. v.name, function()
      local inputs = {rand_data(v.x, vi), rand_data(v.w, 100 + vi, 0.5)}
      if v.bias then inputs[3] = rand_data({v.w[1]}, 200 + vi) end
      -- conv is linear in each input: a large step keeps rounding small
      grad_check(function(t) return F.conv2d(t[1], t[2], t[3], v.o) end, inputs, {eps = 0.5})
    end)
  end

  it('gives weight and bias gradients when the input needs none (first layer)', function()
    local inputs = {rand_data({3, 3, 6, 6}, 7), rand_data({5, 3, 3, 3}, 8), rand_data({5}, 9)}
    inputs[1].const = true
    grad_check(function(t) return F.conv2d(t[1], t[2], t[3], {padding = 1}) end, inputs, {eps = 0.5})
  end)

  it('a weight or a bias gradient alone is the one of the full backward, bit for bit', function()
    local xd, wd, bd = rand_data({2, 3, 6, 6}, 11), rand_data({4, 3, 3, 3}, 12, 0.5), rand_data({4}, 13)
    local r = from(rand_data({2, 4, 6, 6}, 14))
    local function grads(need_w, need_b)
      local x = from(xd):requires_grad_(true)
      local w, b = from(wd), from(bd)
      if need_w then w:requires_grad_(true) end
      if need_b then b:requires_grad_(true) end
      (F.conv2d(x, w, b, {padding = 1}) * r):sum():backward()
      return need_w and w.grad:tolist(), need_b and b.grad:tolist()
    end
    local gw, gb = grads(true, true)
    local gw_only = grads(true, false)
    local _, gb_only = grads(false, true)
    assert.are.same(gw, gw_only)
    assert.are.same(gb, gb_only)
  end)

  it('is repeatable across calls and after its primitives were evicted from the cache', function()
    local C = require 'gam.lib'
    assert.are.equal(0, C.gam_conv2d_set_cache_capacity(4))
    local ok, err = pcall(function()
      local x, w = from(rand_data({2, 4, 6, 6}, 1)), from(rand_data({5, 4, 3, 3}, 2))
      local first = F.conv2d(x, w, nil, {padding = 1}):tolist()
      assert.are.same(first, F.conv2d(x, w, nil, {padding = 1}):tolist())
      assert.are.equal(1, C.gam_conv2d_cache_size())
      for n = 1, 6 do -- more distinct shapes than the cache holds, with backward passes
        local xi = gam.randn({n, 2, 3, 3}, {requires_grad = true})
        F.conv2d(xi, gam.randn({2, 2, 2, 2}, {requires_grad = true})):sum():backward()
      end
      assert.are.equal(4, C.gam_conv2d_cache_size())
      assert.are.same(first, F.conv2d(x, w, nil, {padding = 1}):tolist())
    end)
    assert.are.equal(0, C.gam_conv2d_set_cache_capacity(512))
    assert(ok, err)
    assert.are.equal(0, C.gam_conv2d_cache_size())
    assert.are_not.equal(0, C.gam_conv2d_set_cache_capacity(0))
  end)

  it('winograd algorithm agrees with direct (values and gradients), and can be switched back', function()
    local x, w = rand_data({2, 16, 6, 6}, 31), rand_data({16, 16, 3, 3}, 32, 0.3)
    local b = rand_data({16}, 33)
    local direct = F.conv2d(from(x), from(w), from(b), {padding = 1}):tolist()
    assert.are.equal('direct', F.set_conv_algorithm('winograd'))
    local ok, err = pcall(function()
      local wino = F.conv2d(from(x), from(w), from(b), {padding = 1}):tolist()
      local scale = 0
      for i = 1, #direct do scale = math.max(scale, math.abs(direct[i])) end
      assert_close(wino, direct, 0, 1e-4 * scale, 'winograd output')
      grad_check(function(t) return F.conv2d(t[1], t[2], t[3], {padding = 1}) end,
                 {rand_data({1, 16, 4, 4}, 34), rand_data({16, 16, 3, 3}, 35, 0.3), rand_data({16}, 36)},
                 {eps = 0.5, rtol = 1e-3, atol = 1e-3})
    end)
    assert.are.equal('winograd', F.set_conv_algorithm('direct'))
    assert(ok, err)
    assert.are.same(direct, F.conv2d(from(x), from(w), from(b), {padding = 1}):tolist())
    expect_error("set_conv_algorithm: expected 'direct' or 'winograd', got fast", F.set_conv_algorithm, 'fast')
  end)

  it('handles an empty batch', function()
    local w = gam.randn({4, 3, 3, 3}, {requires_grad = true})
    local y = F.conv2d(gam.zeros({0, 3, 5, 5}), w, nil, {padding = 1})
    same_shape(y, {0, 4, 5, 5})
    y:sum():backward()
    assert.are.equal(0, w.grad:abs():sum():item())
  end)

  it('rejects bad arguments with clear errors', function()
    local x, w = gam.randn({2, 3, 5, 5}), gam.randn({4, 3, 3, 3})
    expect_error('conv2d: input has 3 channels, weight expects 1', F.conv2d, x, gam.randn({4, 1, 3, 3}))
    expect_error('conv2d: input must be 4-D [N, C, H, W], got [3,5,5]', F.conv2d, gam.randn({3, 5, 5}), w)
    expect_error('conv2d: weight must be 4-D', F.conv2d, x, gam.randn({4, 27}))
    expect_error('conv2d: bias [3] does not match weight [4,3,3,3]', F.conv2d, x, w, gam.randn({3}))
    expect_error('conv2d: stride must be at least 1, got (0, 0)', F.conv2d, x, w, nil, {stride = 0})
    expect_error('conv2d: stride must be at least 1, got (1, -2)', F.conv2d, x, w, nil, {stride = {1, -2}})
    expect_error('conv2d: padding must be at least 0', F.conv2d, x, w, nil, {padding = -1})
    expect_error('conv2d: dilation must be at least 1', F.conv2d, x, w, nil, {dilation = 0})
    expect_error('conv2d: kernel 3x3 (dilation 3x3) is larger than the padded input 5x5', F.conv2d, x, w, nil,
                 {dilation = 3})
    expect_error('conv2d: kernel 7x7 (dilation 1x1) is larger than the padded input 7x5', F.conv2d, x,
                 gam.randn({1, 3, 7, 7}), nil, {padding = {1, 0}})
    expect_error('conv2d: stride must be a number or a pair {h, w}', F.conv2d, x, w, nil, {stride = {1, 2, 3}})
    expect_error('conv2d: stride must be integers, got 1.5', F.conv2d, x, w, nil, {stride = 1.5})
    expect_error('conv2d: groups other than 1 are not supported', F.conv2d, x, w, nil, {groups = 3})
    expect_error('conv2d: options must be a table', F.conv2d, x, w, nil, 2)
    expect_error('conv2d: weight must be a tensor, got nil', F.conv2d, x, nil)
    expect_error('conv2d: input must be float32, got int64', F.conv2d, gam.zeros({1, 3, 5, 5}, {dtype = 'int64'}), w)
  end)
end)

-- ---- batch_norm ------------------------------------------------------------------------
describe('batch_norm', function()
  -- per-channel mean, biased and unbiased variance of x [N,C,H,W] in double
  local function channel_stats(x)
    local N, C = x.shape[1], x.shape[2]
    local inner = numel(x.shape) / (N * C)
    local mean, var, uvar = {}, {}, {}
    for c = 1, C do
      local s, m = 0, N * inner
      for n = 0, N - 1 do
        for k = 1, inner do s = s + x.data[(n * C + c - 1) * inner + k] end
      end
      local mu, ss = s / m, 0
      for n = 0, N - 1 do
        for k = 1, inner do ss = ss + (x.data[(n * C + c - 1) * inner + k] - mu) ^ 2 end
      end
      mean[c], var[c], uvar[c] = mu, ss / m, ss / (m - 1)
    end
    return mean, var, uvar
  end

  local function normalised(x, mean, var, w, b, eps)
    local N, C = x.shape[1], x.shape[2]
    local inner = numel(x.shape) / (N * C)
    local y = {}
    for n = 0, N - 1 do
      for c = 1, C do
        for k = 1, inner do
          local i = (n * C + c - 1) * inner + k
          y[i] = (x.data[i] - mean[c]) / math.sqrt(var[c] + eps) * w[c] + b[c]
        end
      end
    end
    return y
  end

  it('training: normalises with batch mean and biased variance, updates running stats (unbiased)', function()
    local x = rand_data({3, 2, 4, 5}, 11, 2)
    local w, b = {1.5, -0.5}, {0.25, 2}
    local rm0, rv0 = {0.3, -0.2}, {1.2, 0.7}
    local rm, rv = gam.tensor(rm0), gam.tensor(rv0)
    local y = F.batch_norm(from(x), rm, rv, gam.tensor(w), gam.tensor(b), true, 0.1, 1e-5)
    local mean, var, uvar = channel_stats(x)
    assert_close(y:tolist(), normalised(x, mean, var, w, b, 1e-5), 1e-5, 1e-5, 'output')
    local want_rm, want_rv = {}, {}
    for c = 1, 2 do
      want_rm[c] = 0.9 * rm0[c] + 0.1 * mean[c]
      want_rv[c] = 0.9 * rv0[c] + 0.1 * uvar[c]
    end
    assert_close(rm:tolist(), want_rm, 1e-6, 1e-7, 'running_mean')
    assert_close(rv:tolist(), want_rv, 1e-6, 1e-7, 'running_var')
    -- unbiased, not biased: the two differ by m/(m-1) = 60/59 here
    assert(math.abs(rv:tolist()[1] - (0.9 * rv0[1] + 0.1 * var[1])) > 1e-4)
  end)

  it('momentum 0 leaves the running statistics unchanged bit for bit; momentum 1 replaces them', function()
    local x = rand_data({4, 3, 2, 2}, 12, 3)
    local rm, rv = gam.tensor({0.1, 0.2, 0.3}), gam.tensor({1.1, 1.3, 0.9})
    local before_m, before_v = rm:tolist(), rv:tolist()
    F.batch_norm(from(x), rm, rv, nil, nil, true, 0, 1e-5)
    assert.are.same(before_m, rm:tolist())
    assert.are.same(before_v, rv:tolist())
    F.batch_norm(from(x), rm, rv, nil, nil, true, 1, 1e-5)
    local mean, _, uvar = channel_stats(x)
    assert_close(rm:tolist(), mean, 1e-6, 1e-7, 'running_mean')
    assert_close(rv:tolist(), uvar, 1e-6, 1e-7, 'running_var')
  end)

  it('evaluation: normalises with the running statistics and leaves them alone', function()
    local x = rand_data({2, 3, 3, 2}, 13, 2)
    local rm0, rv0, w, b = {0.5, -1, 0}, {2, 0.5, 1}, {1, 2, -1}, {0, 0.5, 1}
    local rm, rv = gam.tensor(rm0), gam.tensor(rv0)
    local y = F.batch_norm(from(x), rm, rv, gam.tensor(w), gam.tensor(b), false, 0.1, 1e-3)
    assert_close(y:tolist(), normalised(x, rm0, rv0, w, b, 1e-3), 1e-5, 1e-5, 'output')
    assert_close(rm:tolist(), rm0, 0, 0, 'running_mean')
    assert_close(rv:tolist(), rv0, 0, 0, 'running_var')
  end)

  it('training gradients of x, weight and bias', function()
    local inputs = {rand_data({3, 2, 3, 3}, 14, 2), rand_data({2}, 15), rand_data({2}, 16)}
    grad_check(function(t) return F.batch_norm(t[1], nil, nil, t[2], t[3], true, 0.1, 1e-5) end, inputs,
               {eps = 1e-2, rtol = 2e-2, atol = 2e-3})
  end)

  it('training gradients without affine parameters, on [N, C] input', function()
    local inputs = {rand_data({5, 3}, 17, 2)}
    grad_check(function(t) return F.batch_norm(t[1], nil, nil, nil, nil, true, 0.1, 1e-5) end, inputs,
               {eps = 1e-2, rtol = 2e-2, atol = 2e-3})
  end)

  it('evaluation gradients of x, weight and bias', function()
    local inputs = {rand_data({2, 3, 2, 3}, 18, 2), rand_data({3}, 19), rand_data({3}, 20)}
    local rm, rv = gam.tensor({0.1, -0.3, 0.2}), gam.tensor({0.8, 1.5, 1.1})
    grad_check(function(t) return F.batch_norm(t[1], rm, rv, t[2], t[3], false, 0.1, 1e-5) end, inputs,
               {eps = 1e-2})
  end)

  it('rejects bad arguments with clear errors', function()
    local x = gam.randn({2, 3, 4, 4})
    local c3 = gam.ones({3})
    expect_error('batch_norm: weight [4] does not match the input\'s 3 channels', F.batch_norm, x, nil, nil,
                 gam.ones({4}), nil, true)
    expect_error('batch_norm: give both running_mean and running_var', F.batch_norm, x, c3, nil, nil, nil, true)
    expect_error('batch_norm: evaluation mode needs running_mean and running_var', F.batch_norm, x, nil, nil,
                 nil, nil, false)
    expect_error('batch_norm: expected more than 1 value per channel when training, got input [1,3,1,1]',
                 F.batch_norm, gam.randn({1, 3, 1, 1}), nil, nil, nil, nil, true)
    expect_error('batch_norm: momentum must be in [0, 1], got 1.5', F.batch_norm, x, c3, gam.ones({3}), nil, nil,
                 true, 1.5)
    expect_error('batch_norm: eps must be a non-negative number, got -1', F.batch_norm, x, nil, nil, nil, nil,
                 true, 0.1, -1)
    expect_error('batch_norm: input must be [N, C, H, W]', F.batch_norm, gam.randn({2, 3, 2, 2, 2}), nil, nil,
                 nil, nil, true)
    expect_error('batch_norm: training must be a boolean, got number', F.batch_norm, x, nil, nil, nil, nil, 1)
    expect_error('batch_norm: running_mean must be a tensor', F.batch_norm, x, {0, 0, 0}, c3, nil, nil, true)
  end)
end)

-- ---- pooling ------------------------------------------------------------------------
describe('pooling', function()
  local max_variants = {
    {name = '2x2', k = 2},
    {name = '3x3 stride 2 padding 1 ceil_mode', k = 3, s = 2, p = 1, ceil = true},
    {name = '{2,3} stride {1,2} padding {1,1}', k = {2, 3}, s = {1, 2}, p = {1, 1}},
  }
  for _, v in ipairs(max_variants) do
    it('max_pool2d gradient: ' .. v.name, function()
      grad_check(function(t) return F.max_pool2d(t[1], v.k, v.s, v.p, v.ceil) end,
                 {distinct_data({2, 2, 5, 7}, 21)}, {eps = 1e-2, atol = 1e-4})
    end)
  end

  it('max_pool2d forward picks window maxima, padding never wins', function()
    local x = gam.tensor({{{{-1, -2, -3}, {-4, -5, -6}, {-7, -8, -9}}}})
    assert.are.same({-1, -2, -4, -5}, F.max_pool2d(x, 2, 2, 1):tolist())
    assert.are.same({-1, -2, -4, -5}, F.max_pool2d(x, 2, 1):tolist())
    assert.are.same({-1, -3, -7, -9}, F.max_pool2d(x, 2, 2, 0, true):tolist()) -- ceil: edge windows
    local nan = F.max_pool2d(gam.tensor({{{{1, 0 / 0}, {3, 2}}}}), 2):tolist()[1]
    assert(nan ~= nan, 'NaN propagates through max pooling')
  end)

  it('max_pool2d 2x2 (its own loop) and the general loop agree with the scan rule on ties, NaN and -inf', function()
    -- every window of 4 values drawn from {-inf, -1, 0, 1, NaN}: 625 windows side by side
    local vals, top, bot = {-math.huge, -1, 0, 1, 0 / 0}, {}, {}
    local want_y, want_at = {}, {}
    for code = 0, 624 do
      local w, c = {}, code
      for k = 1, 4 do w[k] = vals[c % 5 + 1]; c = math.floor(c / 5) end
      top[#top + 1], top[#top + 2], bot[#bot + 1], bot[#bot + 2] = w[1], w[2], w[3], w[4]
      local best, at = w[1], 1 -- scan order: row 0 then row 1; the first NaN, else the first maximum
      for k = 2, 4 do
        if best == best and (w[k] > best or w[k] ~= w[k]) then best, at = w[k], k end
      end
      want_y[#want_y + 1], want_at[#want_at + 1] = best, at
    end
    local function check(y, gx, odd)
      local row = 2 * 625 + (odd and 1 or 0)
      for o = 1, 625 do
        local got, want = y[o], want_y[o]
        assert(got == want or (got ~= got and want ~= want), ('window %d: %s, want %s'):format(o, got, want))
        local pos = {2 * o - 1, 2 * o, row + 2 * o - 1, row + 2 * o}
        for k = 1, 4 do
          assert.are.equal(k == want_at[o] and 1 or 0, gx[pos[k]], ('window %d: gradient at %d'):format(o, k))
        end
      end
    end
    local function run(odd)
      local t, b = {unpack(top)}, {unpack(bot)}
      if odd then t[#t + 1], b[#b + 1] = 0, 0 end -- a partial last window: the general loop
      local x = gam.tensor({{{t, b}}}):requires_grad_(true)
      local y = F.max_pool2d(x, 2, 2, 0, odd)
      y:backward(gam.ones(y:size()))
      check(y:view(-1):tolist(), x.grad:view(-1):tolist(), odd)
    end
    run(false)
    run(true)
  end)

  local avg_variants = {
    {name = '2x2', k = 2},
    {name = '3x3 stride 2 padding 1 ceil_mode, count_include_pad', k = 3, s = 2, p = 1, ceil = true, inc = true},
    {name = '3x3 stride 2 padding 1 ceil_mode, count_include_pad=false', k = 3, s = 2, p = 1, ceil = true,
     inc = false},
    {name = '{3,2} stride {2,1} padding {1,0}', k = {3, 2}, s = {2, 1}, p = {1, 0}},
  }
  for _, v in ipairs(avg_variants) do
    it('avg_pool2d gradient: ' .. v.name, function()
      grad_check(function(t) return F.avg_pool2d(t[1], v.k, v.s, v.p, v.ceil, v.inc) end,
                 {rand_data({2, 2, 5, 7}, 22)}, {eps = 0.5})
    end)
  end

  it('avg_pool2d divisors at padded and ceil_mode edges (PyTorch semantics)', function()
    local x = gam.ones({1, 1, 4, 4})
    -- k3 s2 p1 ceil: rows/cols windows [-1,2), [1,4), [3,5) (the last clipped to the padded end)
    assert_close(F.avg_pool2d(x, 3, 2, 1, true, true):tolist(),
                 {4 / 9, 6 / 9, 2 / 6, 6 / 9, 1, 3 / 6, 2 / 6, 3 / 6, 1 / 4}, 1e-6, 0, 'count_include_pad')
    assert_close(F.avg_pool2d(x, 3, 2, 1, true, false):tolist(), {1, 1, 1, 1, 1, 1, 1, 1, 1}, 1e-6, 0,
                 'count_include_pad=false')
  end)

  it('adaptive_avg_pool2d gradient and forward on uneven windows', function()
    grad_check(function(t) return F.adaptive_avg_pool2d(t[1], {3, 2}) end, {rand_data({2, 2, 5, 7}, 23)},
               {eps = 0.5})
    local x = gam.tensor({{{{1, 2, 3, 4, 5}}}})
    -- 5 -> 3: windows [0,2), [1,4), [3,5)
    assert_close(F.adaptive_avg_pool2d(x, {1, 3}):tolist(), {1.5, 3, 4.5}, 1e-6, 0, 'adaptive')
    assert_close(F.adaptive_avg_pool2d(x, 1):tolist(), {3}, 1e-6, 0, 'global')
  end)

  it('rejects bad arguments with clear errors', function()
    local x = gam.randn({1, 2, 4, 4})
    expect_error('max_pool2d: kernel 5x5 is larger than the padded input 4x4', F.max_pool2d, x, 5)
    expect_error('avg_pool2d: stride must be at least 1, got (0, 0)', F.avg_pool2d, x, 2, 0)
    expect_error('max_pool2d: padding (2, 2) must be at most half the kernel size (3, 3)', F.max_pool2d, x, 3, 1, 2)
    expect_error('max_pool2d: input must be 4-D [N, C, H, W], got [2,4,4]', F.max_pool2d, gam.randn({2, 4, 4}), 2)
    expect_error('avg_pool2d: kernel size must be a number or a pair', F.avg_pool2d, x, nil)
    expect_error('avg_pool2d: padding must be at least 0', F.avg_pool2d, x, 2, 2, -1)
    expect_error('avg_pool2d: ceil_mode must be a boolean', F.avg_pool2d, x, 2, 2, 0, 1)
    expect_error('adaptive_avg_pool2d: output size must be at least 1, got (0, 2)', F.adaptive_avg_pool2d, x, {0, 2})
    expect_error('max_pool2d: input must be a tensor', F.max_pool2d, {1, 2}, 2)
  end)
end)

-- ---- dropout ----------------------------------------------------------------------
describe('dropout', function()
  it('zeroes about p of the elements, scales the rest by 1/(1-p), gradient uses the same mask', function()
    gam.manual_seed(3)
    local x = gam.ones({100, 100}, {requires_grad = true})
    local y = F.dropout(x, 0.3, true)
    local vals = y:tolist()
    local zeros = 0
    for _, v in ipairs(vals) do
      if v == 0 then zeros = zeros + 1 else assert(math.abs(v - 1 / 0.7) < 1e-6, 'kept value ' .. v) end
    end
    assert(math.abs(zeros / 10000 - 0.3) < 0.03, 'dropped fraction ' .. zeros / 10000)
    y:backward(gam.full({100, 100}, 2))
    local g = x.grad:tolist()
    for i = 1, #vals do assert.are.equal(2 * vals[i], g[i]) end
  end)

  it('is deterministic for a seed and differs between seeds', function()
    local x = gam.randn({8, 50})
    gam.manual_seed(11)
    local a = F.dropout(x, 0.5, true):tolist()
    gam.manual_seed(11)
    local b = F.dropout(x, 0.5, true):tolist()
    gam.manual_seed(12)
    local c = F.dropout(x, 0.5, true):tolist()
    assert.are.same(a, b)
    assert.are_not.same(a, c)
  end)

  it('is the identity when not training or when p = 0', function()
    local x = gam.randn({4, 5}, {requires_grad = true})
    assert.are.same(x:tolist(), F.dropout(x, 0.5, false):tolist())
    assert.are.same(x:tolist(), F.dropout(x, 0, true):tolist())
    F.dropout(x, 0.9, false):sum():backward()
    assert.are.same(gam.ones({4, 5}):tolist(), x.grad:tolist())
  end)

  it('gradient matches finite differences (mask fixed by the seed)', function()
    grad_check(function(t)
      gam.manual_seed(5)
      return F.dropout(t[1], 0.4, true)
    end, {rand_data({3, 7}, 24)}, {eps = 0.5})
  end)

  it('rejects p outside [0, 1) and bad types', function()
    local x = gam.randn({2, 2})
    expect_error('dropout: probability p must be in [0, 1), got 1', F.dropout, x, 1)
    expect_error('dropout: probability p must be in [0, 1), got -0.1', F.dropout, x, -0.1)
    expect_error('dropout: p must be a number, got string', F.dropout, x, 'half')
    expect_error('dropout: training must be a boolean', F.dropout, x, 0.5, 'yes')
  end)
end)

-- ---- memory ----------------------------------------------------------------------
describe('layer ops memory', function()
  it('forward and backward inside a scope return live tensors and bytes to the baseline', function()
    local w = gam.randn({8, 3, 3, 3}, {requires_grad = true})
    local bw, bb = gam.ones({8}, {requires_grad = true}), gam.zeros({8}, {requires_grad = true})
    local rm, rv = gam.zeros({8}), gam.ones({8})
    local function step()
      gam.scope(function()
        local x = gam.randn({4, 3, 12, 12}, {requires_grad = true})
        local y = F.conv2d(x, w, nil, {padding = 1, stride = 1})
        y = F.batch_norm(y, rm, rv, bw, bb, true, 0.1, 1e-5)
        y = F.dropout(F.max_pool2d(y, 3, 2, 1, true), 0.2, true)
        y = F.adaptive_avg_pool2d(F.avg_pool2d(y, 2, 1, 1, false, false), 2)
        y:sum():backward()
      end)
    end
    step() -- primitive cache and grads of the leaves exist from here on
    local before = gam.memory()
    for _ = 1, 3 do step() end
    local after = gam.memory()
    assert.are.equal(before.live_tensors, after.live_tensors)
    assert.are.equal(before.live_bytes, after.live_bytes)
  end)
end)

-- ---- golden values from PyTorch ----------------------------------------------------
describe('golden layers (PyTorch)', function()
  local gold = dofile(here .. '/fixtures/golden_layers.lua')

  local function net(p, rm1, rv1, rm2, rv2, training)
    local y = F.conv2d(p.x, p.conv1_w, p.conv1_b, {stride = 1, padding = 1})
    y = F.relu(F.batch_norm(y, rm1, rv1, p.bn1_w, p.bn1_b, training, 0.1, 1e-5))
    y = F.max_pool2d(y, 2)
    y = F.conv2d(y, p.conv2_w, nil, {stride = 1, padding = 2, dilation = 2})
    y = F.relu(F.batch_norm(y, rm2, rv2, p.bn2_w, p.bn2_b, training, 0.1, 1e-5))
    y = F.avg_pool2d(y, 3, 2, 1, true, false)
    y = F.adaptive_avg_pool2d(y, 2):flatten(2)
    return F.linear(y, p.lin_w, p.lin_b)
  end

  it('conv/BN/ReLU/maxpool/avgpool/linear network: training forward, running stats, gradients, eval', function()
    local p = {}
    for k, v in pairs(gold.inputs) do p[k] = from(v) end
    for k in pairs(gold.grads) do p[k]:requires_grad_(true) end
    local out = net(p, p.bn1_rm, p.bn1_rv, p.bn2_rm, p.bn2_rv, true)
    same_shape(out, gold.out_train.shape, 'output shape')
    assert_close(out:tolist(), gold.out_train.data, 1e-4, 1e-5, 'training output')
    for k, v in pairs(gold.running) do assert_close(p[k]:tolist(), v.data, 1e-5, 1e-6, k) end
    out:backward(p.r)
    for k, v in pairs(gold.grads) do assert_close(p[k].grad:tolist(), v.data, 1e-3, 1e-5, 'grad ' .. k) end
    local ev = gam.no_grad(function() return net(p, p.bn1_rm, p.bn1_rv, p.bn2_rm, p.bn2_rv, false) end)
    assert_close(ev:tolist(), gold.out_eval.data, 1e-4, 1e-5, 'evaluation output')
  end)

  it('single layers on an odd-sized input', function()
    local z, cw, cb = from(gold.layer_input.z), from(gold.layer_input.cw), from(gold.layer_input.cb)
    local run = {
      function() return F.conv2d(z, cw, cb, {stride = {2, 1}, padding = {1, 0}, dilation = {1, 2}}) end,
      function() return F.conv2d(z, cw, nil, {stride = 3, padding = 2}) end,
      function() return F.max_pool2d(z, 3, 2, 1, true) end,
      function() return F.max_pool2d(z, {2, 3}, {1, 2}) end,
      function() return F.avg_pool2d(z, 3, 2, 1, true, true) end,
      function() return F.avg_pool2d(z, 3, 2, 1, true, false) end,
      function() return F.avg_pool2d(z, 2, 2, 0, true) end,
      function() return F.adaptive_avg_pool2d(z, {3, 4}) end,
      function() return F.adaptive_avg_pool2d(z, {5, 2}) end,
    }
    assert.are.equal(#gold.layer_cases, #run)
    for i, case in ipairs(gold.layer_cases) do
      local y = run[i]()
      same_shape(y, case.out.shape, case.name)
      assert_close(y:tolist(), case.out.data, 1e-5, 1e-6, case.name)
    end
  end)
end)
