-- Forward values of the tensor ops against hand-computed ones, views, copies,
-- conversions, creation, random numbers and printing.
local gam = require 'gam'
local F = gam.F
local here = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.'
local H = dofile(here .. '/gradcheck.lua')
local close = H.close

local function t(v, o) return gam.tensor(v, o) end
local function long(v) return gam.tensor(v, {dtype = 'int64'}) end

describe('elementwise binary ops', function()
  local a = t{{1, 2, 3}, {4, 5, 6}}
  local b = t{{6, 5, 4}, {3, 2, 1}}

  it('add, sub, mul, div of equal shapes', function()
    close(a + b, {{7, 7, 7}, {7, 7, 7}})
    close(a - b, {{-5, -3, -1}, {1, 3, 5}})
    close(a * b, {{6, 10, 12}, {12, 10, 6}})
    close(a / b, {{1 / 6, 2 / 5, 3 / 4}, {4 / 3, 5 / 2, 6}})
    close(a:add(b), {{7, 7, 7}, {7, 7, 7}})
    close(a:div(b), {{1 / 6, 2 / 5, 3 / 4}, {4 / 3, 5 / 2, 6}})
  end)

  it('broadcasts [N,C] with [C] on either side', function()
    local c = t{10, 20, 30}
    close(a + c, {{11, 22, 33}, {14, 25, 36}})
    close(c + a, {{11, 22, 33}, {14, 25, 36}})
    close(c - a, {{9, 18, 27}, {6, 15, 24}})
    close(a / c, {{0.1, 0.1, 0.1}, {0.4, 0.25, 0.2}})
  end)

  it('broadcasts [N,1] * [1,M] into [N,M]', function()
    close(t{{1}, {2}} * t{{3, 4, 5}}, {{3, 4, 5}, {6, 8, 10}})
    close(t{{3, 4, 5}} - t{{1}, {2}}, {{2, 3, 4}, {1, 2, 3}})
  end)

  it('broadcasts 3-D shapes [2,1,3] + [4,1] -> [2,4,3]', function()
    local x = gam.arange(6):reshape(2, 1, 3)
    local y = t{{100}, {200}, {300}, {400}}
    local want = {}
    for i = 1, 2 do
      want[i] = {}
      for j = 1, 4 do
        want[i][j] = {}
        for k = 1, 3 do want[i][j][k] = (i - 1) * 3 + (k - 1) + j * 100 end
      end
    end
    close(x + y, want)
  end)

  it('broadcasts a scalar tensor', function()
    close(a * t(2), {{2, 4, 6}, {8, 10, 12}})
    close(t(10) - a, {{9, 8, 7}, {6, 5, 4}})
    close(t(3) + t(4), 7, nil, nil, {})
  end)

  it('takes numbers on either side', function()
    close(a + 1, {{2, 3, 4}, {5, 6, 7}})
    close(1 + a, {{2, 3, 4}, {5, 6, 7}})
    close(a - 1, {{0, 1, 2}, {3, 4, 5}})
    close(10 - a, {{9, 8, 7}, {6, 5, 4}})
    close(a * 2, {{2, 4, 6}, {8, 10, 12}})
    close(2 * a, {{2, 4, 6}, {8, 10, 12}})
    close(a / 2, {{0.5, 1, 1.5}, {2, 2.5, 3}})
    close(12 / a, {{12, 6, 4}, {3, 2.4, 2}})
    close(-a, {{-1, -2, -3}, {-4, -5, -6}})
  end)

  it('works on large tensors (the OpenMP path) and broadcast rows', function()
    local n = 70000
    local x = gam.arange(n)
    local y = x * 2 + 1
    local v = y:tolist()
    assert.are.equal(1, v[1])
    assert.are.equal(2 * (n - 1) + 1, v[n])
    local m = gam.arange(3 * 40000):reshape(40000, 3) + t{1, 2, 3}
    local mv = m:tolist()
    assert.are.equal(0 + 1, mv[1])
    assert.are.equal(3 * 39999 + 2 + 3, mv[3 * 40000])
  end)

  it('gives the same results with one thread as with two', function()
    local n0 = gam.get_num_threads()
    gam.manual_seed(8)
    local u, v = gam.randn(300, 400), gam.randn(400) -- 120000 elements: above GAM_PAR_MIN
    local function results()
      return {(u + v):tolist(), (u * u):exp():tolist(), u:softmax(2):tolist(), u:sum(1):tolist(), u:t():tolist()}
    end
    gam.set_num_threads(1)
    local one = gam.scope(results)
    gam.set_num_threads(2)
    local two = gam.scope(results)
    gam.set_num_threads(n0)
    for k = 1, #one do
      assert.are.equal(#one[k], #two[k])
      for i = 1, #one[k], 97 do assert.are.equal(one[k][i], two[k][i]) end
    end
  end)

  it('add_ adds in place with a factor', function()
    local x = t{1, 2, 3}
    x:add_(t{1, 1, 1}, -2)
    close(x, {-1, 0, 1})
  end)
end)

describe('unary ops', function()
  it('neg, exp, log, sqrt, abs, relu', function()
    local x = t{-2, -0.5, 0, 1, 3}
    close(x:neg(), {2, 0.5, 0, -1, -3})
    close(x:exp(), {math.exp(-2), math.exp(-0.5), 1, math.exp(1), math.exp(3)}, 1e-6, 1e-6)
    close(x:abs(), {2, 0.5, 0, 1, 3})
    close(x:relu(), {0, 0, 0, 1, 3})
    close(F.relu(x), {0, 0, 0, 1, 3})
    local p = t{0.25, 1, 4, 9}
    close(p:log(), {math.log(0.25), 0, math.log(4), math.log(9)}, 1e-6, 1e-6)
    close(p:sqrt(), {0.5, 1, 2, 3})
  end)

  it('pow with integer, fractional and negative exponents', function()
    local p = t{0.5, 1, 2, 3}
    close(p:pow(2), {0.25, 1, 4, 9})
    close(p ^ 3, {0.125, 1, 8, 27})
    close(p:pow(0.5), {math.sqrt(0.5), 1, math.sqrt(2), math.sqrt(3)}, 1e-6, 1e-6)
    close(p:pow(-1), {2, 1, 0.5, 1 / 3}, 1e-6, 1e-6)
    close(t{-2, 2}:pow(2), {4, 4})
  end)

  it('follows IEEE for log(0), sqrt(-1) and division by zero', function()
    local v = t{0, -1, 1}:log():tolist()
    assert.are.equal(-math.huge, v[1])
    assert.is_true(v[2] ~= v[2])
    v = (t{1, -1, 0} / 0):tolist()
    assert.are.equal(math.huge, v[1])
    assert.are.equal(-math.huge, v[2])
    assert.is_true(v[3] ~= v[3])
  end)
end)

describe('matmul and linear', function()
  it('matmul [3,2] x [2,3]', function()
    close(t{{1, 2}, {3, 4}, {5, 6}}:matmul(t{{1, 0, 2}, {0, 1, 3}}),
          {{1, 2, 8}, {3, 4, 18}, {5, 6, 28}})
    close(F.matmul(t{{1, 2}}, t{{3}, {4}}), {{11}})
  end)

  it('matmul of larger random matrices matches a Lua triple loop', function()
    gam.manual_seed(5)
    local A, B = gam.randn(17, 33), gam.randn(33, 9)
    local a, b = A:totable(), B:totable()
    local want = {}
    for i = 1, 17 do
      want[i] = {}
      for j = 1, 9 do
        local s = 0
        for k = 1, 33 do s = s + a[i][k] * b[k][j] end
        want[i][j] = s
      end
    end
    close(A:matmul(B), want, 1e-4, 1e-4)
  end)

  it('handles an empty inner dimension', function()
    close(gam.zeros(2, 0):matmul(gam.zeros(0, 3)), {{0, 0, 0}, {0, 0, 0}})
  end)

  local x = t{{1, 2, 3}, {4, 5, 6}}
  local w = t{{1, 0, -1}, {0.5, 0.5, 0.5}}
  it('linear without bias is x w^T', function()
    close(F.linear(x, w), {{-2, 3}, {-2, 7.5}})
  end)
  it('linear with bias adds it to every row', function()
    close(F.linear(x, w, t{10, 20}), {{8, 23}, {8, 27.5}})
  end)
end)

describe('reductions', function()
  local a = t{{1, 2, 3}, {4, 5, 6}}
  it('sum and mean of everything are scalars', function()
    close(a:sum(), 21, nil, nil, {})
    close(a:mean(), 3.5, nil, nil, {})
    assert.are.equal(21, a:sum():item())
  end)

  it('sum and mean along a dim, with and without keepdim', function()
    close(a:sum(1), {5, 7, 9})
    close(a:sum(2), {6, 15})
    close(a:sum(-1), {6, 15})
    close(a:sum(1, true), {{5, 7, 9}})
    close(a:sum(2, true), {{6}, {15}})
    close(a:mean(1), {2.5, 3.5, 4.5})
    close(a:mean(2), {2, 5})
    close(a:mean(2, true), {{2}, {5}})
  end)

  it('sums the middle dim of a 3-D tensor', function()
    local x = gam.arange(24):reshape(2, 3, 4)
    local want = {}
    for i = 0, 1 do
      want[i + 1] = {}
      for k = 0, 3 do
        local s = 0
        for j = 0, 2 do s = s + i * 12 + j * 4 + k end
        want[i + 1][k + 1] = s
      end
    end
    close(x:sum(2), want)
    close(x:sum(2, true), {{want[1]}, {want[2]}})
  end)

  it('sums large tensors along each dim like a double loop', function()
    gam.manual_seed(11)
    local x = gam.rand(300, 517)
    local v = x:totable()
    local cols, rows, all = {}, {}, 0
    for j = 1, 517 do cols[j] = 0 end
    for i = 1, 300 do
      rows[i] = 0
      for j = 1, 517 do
        cols[j] = cols[j] + v[i][j]
        rows[i] = rows[i] + v[i][j]
        all = all + v[i][j]
      end
    end
    close(x:sum(1), cols, 1e-3, 1e-5)
    close(x:sum(2), rows, 1e-3, 1e-5)
    close(x:sum(), all, 1e-2, 1e-6, {})
    close(x:mean(), all / (300 * 517), 1e-6, 1e-5, {})
  end)

  local m = t{{1, 5, 2}, {7, 0, 3}}
  it('max of everything', function()
    close(m:max(), 7, nil, nil, {})
  end)
  it('max along a dim gives values and 0-based int64 indices', function()
    local v, i = m:max(2)
    close(v, {5, 7})
    close(i, {1, 0})
    assert.are.equal('int64', i:dtype())
    v, i = m:max(1)
    close(v, {7, 5, 3})
    close(i, {1, 0, 1})
    v, i = m:max(1, true)
    close(v, {{7, 5, 3}})
    close(i, {{1, 0, 1}})
  end)
  it('argmax, default last dim', function()
    close(m:argmax(), {1, 0})
    close(m:argmax(2), {1, 0})
    close(m:argmax(1), {1, 0, 1})
    close(m:argmax(2, true), {{1}, {0}})
    close(t{3, 3, 1}:argmax(), 0, nil, nil, {}) -- first of equal maxima
  end)
end)

describe('softmax, log_softmax, gather and losses', function()
  local x = t{{1, 2, 3}, {1, 1, 1}}
  local e1, e2, e3 = math.exp(1), math.exp(2), math.exp(3)
  local z = e1 + e2 + e3

  it('softmax along the last dim (default) and dim 1', function()
    close(x:softmax(), {{e1 / z, e2 / z, e3 / z}, {1 / 3, 1 / 3, 1 / 3}}, 1e-6, 1e-5)
    close(F.softmax(x, 2), {{e1 / z, e2 / z, e3 / z}, {1 / 3, 1 / 3, 1 / 3}}, 1e-6, 1e-5)
    local c2 = e2 + e1
    local c3 = e3 + e1
    close(x:softmax(1), {{0.5, e2 / c2, e3 / c3}, {0.5, e1 / c2, e1 / c3}}, 1e-6, 1e-5)
  end)

  it('log_softmax is the log of softmax, stable for large logits', function()
    local lz = math.log(z)
    close(x:log_softmax(2), {{1 - lz, 2 - lz, 3 - lz}, {-math.log(3), -math.log(3), -math.log(3)}}, 1e-5, 1e-5)
    close(F.log_softmax(t{{1000, 1000}}, 2), {{-math.log(2), -math.log(2)}}, 1e-5, 1e-5)
    close(t{{1000, 0}}:softmax(2), {{1, 0}})
  end)

  it('softmax along the middle dim of a 3-D tensor sums to one', function()
    gam.manual_seed(3)
    local s = gam.randn(2, 4, 3):softmax(2)
    close(s:sum(2), {{1, 1, 1}, {1, 1, 1}}, 1e-6, 1e-6)
  end)

  it('gather picks by 0-based index along a dim', function()
    local a = t{{1, 2, 3}, {4, 5, 6}}
    close(a:gather(2, long{{2}, {0}}), {{3}, {4}})
    close(a:gather(2, long{{0, 0}, {2, 1}}), {{1, 1}, {6, 5}})
    close(a:gather(1, long{{1, 0, 1}}), {{4, 2, 6}})
  end)

  it('cross_entropy per sample is -log_softmax at the target', function()
    local l = F.cross_entropy(x, long{2, 0})
    close(l, {math.log(z) - 3, math.log(3)}, 1e-6, 1e-5)
  end)

  it('smooth_cross_entropy is the KL divergence to 1-s on the target, s/(K-1) elsewhere', function()
    local logits = t{{1, 2, 3, 0.5}, {-1, 0, 2, 2}, {0.3, 0.3, 0.3, 0.3}}
    local target = {2, 0, 3}
    local s, K = 0.1, 4
    local want = {}
    local lv = logits:totable()
    for i = 1, 3 do
      local m = 0
      for k = 1, K do m = m + math.exp(lv[i][k]) end
      local kl = 0
      for k = 1, K do
        local q = (k - 1 == target[i]) and (1 - s) or s / (K - 1)
        local logp = lv[i][k] - math.log(m)
        kl = kl + q * (math.log(q) - logp)
      end
      want[i] = kl
    end
    local l = F.smooth_cross_entropy(logits, long(target), s)
    close(l, want, 1e-6, 1e-5)
    -- with s = 0 it is cross-entropy
    close(F.smooth_cross_entropy(logits, long(target), 0), F.cross_entropy(logits, long(target)):tolist(), 1e-6, 1e-6)
    -- the default smoothing is 0.1
    close(F.smooth_cross_entropy(logits, long(target)), want, 1e-6, 1e-5)
  end)

  it('smooth_cross_entropy is zero when the prediction is the smoothed target', function()
    local s, K = 0.2, 5
    local q = {}
    for k = 1, K do q[k] = math.log(k == 3 and 1 - s or s / (K - 1)) end
    close(F.smooth_cross_entropy(t{q}, long{2}, s), {0}, 1e-6)
  end)
end)

describe('views share storage', function()
  it('reshape and view: writing through one is visible in the other', function()
    local x = gam.arange(12):reshape(3, 4)
    local v = x:reshape(4, 3)
    close(v, {{0, 1, 2}, {3, 4, 5}, {6, 7, 8}, {9, 10, 11}})
    v:fill_(1)
    close(x, {{1, 1, 1, 1}, {1, 1, 1, 1}, {1, 1, 1, 1}})
    local w = x:view(-1)
    assert.are.same({12}, w:shape())
    assert.are.same({2, 6}, x:reshape(2, -1):shape())
    assert.are.same({2, 6}, x:reshape{2, -1}:shape())
  end)

  it('flatten', function()
    local x = gam.zeros(2, 3, 4)
    assert.are.same({24}, x:flatten():shape())
    assert.are.same({2, 12}, x:flatten(2):shape())
    assert.are.same({6, 4}, x:flatten(1, 2):shape())
    assert.are.same({1}, t(5):flatten():shape())
    x:flatten():copy_(gam.arange(24))
    close(x:select(2):select(3), {20, 21, 22, 23})
  end)

  it('narrow (dim 1) and select share rows with the original', function()
    local x = gam.arange(12):reshape(3, 4)
    close(x:narrow(1, 2, 2), {{4, 5, 6, 7}, {8, 9, 10, 11}})
    x:narrow(1, 2, 1):fill_(7)
    close(x, {{0, 1, 2, 3}, {7, 7, 7, 7}, {8, 9, 10, 11}})
    x:select(3):copy_(t{9, 9, 9, 9})
    close(x, {{0, 1, 2, 3}, {7, 7, 7, 7}, {9, 9, 9, 9}})
    close(x[1], {0, 1, 2, 3})
    close(x[1][2], 1, nil, nil, {})
    x[1]:fill_(-1)
    close(x:select(1), {-1, -1, -1, -1})
    assert.are.equal(3, #x)
  end)

  it('detach shares storage', function()
    local x = t{1, 2}:requires_grad_()
    local d = x:detach()
    assert.is_false(d.requires_grad)
    d:fill_(5)
    close(x, {5, 5})
  end)
end)

describe('transpose, cat, clone, copy_, fill_', function()
  it('transposes 2-D (t and transpose)', function()
    local x = t{{1, 2, 3}, {4, 5, 6}}
    close(x:t(), {{1, 4}, {2, 5}, {3, 6}})
    close(x:transpose(), {{1, 4}, {2, 5}, {3, 6}})
    gam.manual_seed(2)
    local big = gam.randn(70, 45)
    local bt, b = big:t():totable(), big:totable()
    for i = 1, 70, 7 do
      for j = 1, 45, 4 do assert.are.equal(b[i][j], bt[j][i]) end
    end
  end)

  it('cat along dims 1, 2 and 3', function()
    local a = gam.arange(12):reshape(2, 2, 3)
    local b = gam.arange(12, 18):reshape(1, 2, 3)
    close(gam.cat({a, b}, 1), {{{0, 1, 2}, {3, 4, 5}}, {{6, 7, 8}, {9, 10, 11}}, {{12, 13, 14}, {15, 16, 17}}})
    local c = gam.arange(100, 106):reshape(2, 1, 3)
    close(gam.cat({a, c}, 2), {{{0, 1, 2}, {3, 4, 5}, {100, 101, 102}}, {{6, 7, 8}, {9, 10, 11}, {103, 104, 105}}})
    local d = t{{{-1}, {-2}}, {{-3}, {-4}}}
    close(gam.cat({a, d, a}, 3), {{{0, 1, 2, -1, 0, 1, 2}, {3, 4, 5, -2, 3, 4, 5}},
                                  {{6, 7, 8, -3, 6, 7, 8}, {9, 10, 11, -4, 9, 10, 11}}})
    close(gam.cat({a, d}, -1), gam.cat({a, d}, 3):totable())
    close(gam.cat({t{1, 2}}), {1, 2})
    close(gam.cat({long{1, 2}, long{3}}), {1, 2, 3})
    assert.are.equal('int64', gam.cat({long{1, 2}, long{3}}):dtype())
  end)

  it('clone is a deep copy', function()
    local x = t{1, 2, 3}
    local c = x:clone()
    c:fill_(0)
    close(x, {1, 2, 3})
    close(c, {0, 0, 0})
  end)

  it('copy_ copies values in place, converting dtypes', function()
    local x = gam.zeros(2, 2)
    x:copy_(t{1, 2, 3, 4})
    close(x, {{1, 2}, {3, 4}})
    x:copy_(long{{5, 6}, {7, 8}})
    close(x, {{5, 6}, {7, 8}})
    assert.are.equal('float32', x:dtype())
    local l = long{0, 0}
    l:copy_(t{1.9, -2.9})
    close(l, {1, -2})
  end)

  it('fill_ and zero_ on each dtype', function()
    close(gam.empty(2, 2):fill_(2.5), {{2.5, 2.5}, {2.5, 2.5}})
    close(gam.ones(3):zero_(), {0, 0, 0})
    close(long{1, 2}:fill_(-7), {-7, -7})
    close(gam.zeros({3}, {dtype = 'uint8'}):fill_(255), {255, 255, 255})
    local big = gam.empty(100000):fill_(3)
    assert.are.equal(300000, big:sum():item())
  end)
end)

describe('dtypes and conversions', function()
  it('float, long and byte convert, truncating toward zero', function()
    local x = t{1.7, -1.7, 2.5, 200}
    local l = x:long()
    assert.are.equal('int64', l:dtype())
    close(l, {1, -1, 2, 200})
    local b = t{3, 255, 0}:byte()
    assert.are.equal('uint8', b:dtype())
    close(b, {3, 255, 0})
    close(b:float(), {3, 255, 0})
    assert.are.equal('float32', b:float():dtype())
    close(l:float(), {1, -1, 2, 200})
    close(x:to('int64'), {1, -1, 2, 200})
    close(x:to('cpu'), {1.7, -1.7, 2.5, 200}, 1e-6)
    assert.are.equal('cpu', x:device())
  end)

  it('int64 keeps integers exactly up to 2^53', function()
    local big = 2 ^ 53 - 1
    local l = long{big, -big}
    assert.are.same({big, -big}, l:totable())
  end)
end)

describe('creation', function()
  it('tensor() and totable() round-trip nested tables', function()
    local v = {{{1, 2}, {3, 4}, {5, 6}}, {{7, 8}, {9, 10}, {11, 12}}}
    local x = t(v)
    assert.are.same({2, 3, 2}, x:shape())
    assert.are.same(v, x:totable())
    assert.are.same({{1, 2}, {3, 4}}, long{{1, 2}, {3, 4}}:totable())
    assert.are.same({1, 0}, gam.tensor({true, false}):totable())
    local s = t(2.5)
    assert.are.same({}, s:shape())
    assert.are.equal(0, s:dim())
    assert.are.equal(2.5, s:totable())
    assert.are.equal(2.5, s:item())
    assert.are.same({0}, t({}):shape())
    assert.are.same({2, 0}, t({{}, {}}):shape())
    close(t(x), v) -- a tensor given to tensor() is copied
  end)

  it('shape, size, numel, dim, dtype, device', function()
    local x = gam.zeros(2, 3, 4)
    assert.are.same({2, 3, 4}, x:shape())
    assert.are.same({2, 3, 4}, x:size())
    assert.are.equal(3, x:size(2))
    assert.are.equal(4, x:size(-1))
    assert.are.equal(24, x:numel())
    assert.are.equal(3, x:dim())
    assert.are.equal('float32', x:dtype())
    assert.are.equal('cpu', x:device())
  end)

  it('zeros, ones, full, empty take a table or sizes and options', function()
    close(gam.zeros(2, 2), {{0, 0}, {0, 0}})
    close(gam.zeros({2, 2}), {{0, 0}, {0, 0}})
    close(gam.ones({3}, {dtype = 'int64'}), {1, 1, 1})
    assert.are.equal('int64', gam.ones({3}, {dtype = 'int64'}):dtype())
    close(gam.full({2}, 7), {7, 7})
    assert.are.same({4, 5}, gam.empty(4, 5):shape())
    assert.are.same({}, gam.zeros({}):shape())
    assert.is_true(gam.zeros({2}, {requires_grad = true}).requires_grad)
  end)

  it('arange like PyTorch', function()
    close(gam.arange(5), {0, 1, 2, 3, 4})
    close(gam.arange(1, 4), {1, 2, 3})
    close(gam.arange(0, 1, 0.25), {0, 0.25, 0.5, 0.75})
    close(gam.arange(5, 0, -2), {5, 3, 1})
    close(gam.arange(3, 3), {}, nil, nil, {0})
    local l = gam.arange(4, {dtype = 'int64'})
    assert.are.equal('int64', l:dtype())
    close(l, {0, 1, 2, 3})
  end)
end)

describe('random numbers', function()
  it('the same seed gives the same tensors', function()
    gam.manual_seed(1234)
    local a, b, c, d = gam.rand(5), gam.randn(7), gam.randint(0, 100, {6}), gam.randperm(9)
    gam.manual_seed(1234)
    assert.are.same(a:tolist(), gam.rand(5):tolist())
    assert.are.same(b:tolist(), gam.randn(7):tolist())
    assert.are.same(c:tolist(), gam.randint(0, 100, {6}):tolist())
    assert.are.same(d:tolist(), gam.randperm(9):tolist())
    gam.manual_seed(1235)
    assert.are_not.same(a:tolist(), gam.rand(5):tolist())
  end)

  it('rng_state and set_rng_state replay the stream', function()
    gam.manual_seed(9)
    local st = gam.rng_state()
    local a = gam.randn(4):tolist()
    gam.set_rng_state(st)
    assert.are.same(a, gam.randn(4):tolist())
  end)

  it('rand is uniform in [low, high)', function()
    gam.manual_seed(1)
    local v = gam.rand(10000):tolist()
    local lo, hi, s = 1, 0, 0
    for _, x in ipairs(v) do lo = math.min(lo, x); hi = math.max(hi, x); s = s + x end
    assert.is_true(lo >= 0 and hi < 1)
    assert.is_true(math.abs(s / #v - 0.5) < 0.02)
    local w = gam.rand({1000}, {low = -3, high = -2}):tolist()
    for _, x in ipairs(w) do assert.is_true(x >= -3 and x < -2) end
  end)

  it('randn has mean about 0 and std about 1 (and honours mean/std)', function()
    gam.manual_seed(7)
    local x = gam.randn(20001)
    local m = x:mean():item()
    local sd = math.sqrt(((x - m) ^ 2):mean():item())
    assert.is_true(math.abs(m) < 0.03, 'mean ' .. m)
    assert.is_true(math.abs(sd - 1) < 0.03, 'std ' .. sd)
    local y = gam.randn({20000}, {mean = 5, std = 0.5})
    assert.is_true(math.abs(y:mean():item() - 5) < 0.02)
  end)

  it('randint stays in [low, high) and hits every value', function()
    gam.manual_seed(3)
    local v = gam.randint(-2, 3, {2000}):tolist()
    local seen = {}
    for _, x in ipairs(v) do
      assert.is_true(x >= -2 and x < 3 and x == math.floor(x))
      seen[x] = true
    end
    for k = -2, 2 do assert.is_true(seen[k]) end
    assert.are.equal('int64', gam.randint(0, 2, {1}):dtype())
  end)

  it('randperm is a permutation of 0..n-1', function()
    gam.manual_seed(4)
    local p = gam.randperm(1000):tolist()
    local seen = {}
    for _, x in ipairs(p) do
      assert.is_true(x >= 0 and x < 1000 and not seen[x])
      seen[x] = true
    end
    assert.are.equal(1000, #p)
    local ident = true
    for i = 1, 1000 do if p[i] ~= i - 1 then ident = false end end
    assert.is_false(ident)
    assert.are.same({}, gam.randperm(0):tolist())
  end)
end)

describe('printing', function()
  it('prints values with one format and aligned columns, and shape/dtype/device', function()
    local s = tostring(t{{1, -2.5}, {30, 4}})
    assert.are.equal('tensor([[ 1.0000, -2.5000],\n' ..
                     '        [30.0000,  4.0000]], shape=[2, 2], dtype=float32, device=cpu)', s)
  end)

  it('prints whole floats as "1." and ints plainly', function()
    assert.are.equal('tensor([1., 2., 3.], shape=[3], dtype=float32, device=cpu)', tostring(t{1, 2, 3}))
    assert.are.equal('tensor([[  1, -20],\n        [  3,   4]], shape=[2, 2], dtype=int64, device=cpu)',
                     tostring(long{{1, -20}, {3, 4}}))
  end)

  it('prints scalars on one line', function()
    assert.are.equal('tensor(3.5000, dtype=float32, device=cpu)', tostring(t(3.5)))
    assert.are.equal('tensor(7, dtype=int64, device=cpu)', tostring(long(7)))
  end)

  it('switches to scientific notation for huge or widely spread values', function()
    assert.are.equal('tensor([1.0000e-06, 1.0000e+00], shape=[2], dtype=float32, device=cpu)',
                     tostring(t{1e-6, 1}))
    local s = tostring(t{1e10, 1})
    assert.truthy(s:find('1.0000e+10', 1, true))
  end)

  it('abbreviates large tensors with ... and keeps the shape', function()
    local s = tostring(gam.arange(2000))
    assert.truthy(s:find('[   0.,    1.,    2., ..., 1997., 1998., 1999.]', 1, true))
    assert.truthy(s:find('shape=[2000]', 1, true))
    local m = tostring(gam.zeros(50, 60))
    local lines = 0
    for _ in m:gmatch('\n') do lines = lines + 1 end
    assert.is_true(lines <= 8, m)
    assert.truthy(m:find('...', 1, true))
  end)

  it('wraps long rows at 80 columns', function()
    local s = tostring(gam.arange(30) + 0.5)
    for line in s:gmatch('[^\n]+') do assert.is_true(#line <= 80, line) end
  end)

  it('shows nan, inf, empty tensors, grad_fn and requires_grad', function()
    assert.are.equal('tensor([nan, inf], shape=[2], dtype=float32, device=cpu)', tostring(t{0 / 0, math.huge}))
    assert.are.equal('tensor([], shape=[0], dtype=float32, device=cpu)', tostring(gam.zeros(0)))
    local x = t{1, 2}:requires_grad_()
    assert.truthy(tostring(x):find('requires_grad=true', 1, true))
    assert.truthy(tostring(x * 2):find('grad_fn=mul', 1, true))
  end)

  it('prints 3-D tensors with blank lines between matrices', function()
    local s = tostring(gam.arange(8):reshape(2, 2, 2))
    assert.are.equal('tensor([[[0., 1.],\n         [2., 3.]],\n\n        [[4., 5.],\n         [6., 7.]]], '
                     .. 'shape=[2, 2, 2], dtype=float32, device=cpu)', s)
  end)
end)
