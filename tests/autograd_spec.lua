-- Every backward against central finite differences, and the autograd
-- semantics: accumulation, no_grad, requires_grad_, detach, explicit output
-- gradients, freed graphs.
local gam = require 'gam'
local F = gam.F
local here = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.'
local H = dofile(here .. '/gradcheck.lua')
local gradcheck, close = H.gradcheck, H.close

local function t(v) return gam.tensor(v) end
local function long(v) return gam.tensor(v, {dtype = 'int64'}) end
-- a leaf requiring grad with values in [lo, hi]
local function leaf(shape, lo, hi) return gam.rand(shape, {low = lo or -1, high = hi or 1}):requires_grad_() end
-- values in [lo, hi] with random signs: |x| >= lo, away from kinks at 0
local function away_from_zero(shape, lo, hi)
  local x = gam.rand(shape, {low = lo, high = hi})
  local s = gam.randint(0, 2, shape):float() * 2 - 1
  return (x * s):detach():requires_grad_()
end

before_each(function() gam.manual_seed(42) end)

describe('the gradient checker', function()
  it('catches a wrong gradient', function()
    -- x * detach(x) has gradient x through autograd, 2x by finite differences
    local x = leaf({3}, 0.5, 1)
    local ok, err = pcall(gradcheck, function(y) return y * y:detach() end, {x})
    assert.is_false(ok)
    assert.truthy(tostring(err):find('finite differences', 1, true), err)
  end)
end)

describe('gradients of binary ops (finite differences)', function()
  it('add, sub, mul, div of equal shapes', function()
    local a, b = leaf({2, 3}), leaf({2, 3}, 0.5, 2)
    gradcheck(function(x, y) return x + y end, {a, b})
    gradcheck(function(x, y) return x - y end, {a, b})
    gradcheck(function(x, y) return x * y end, {a, b})
    gradcheck(function(x, y) return x / y end, {a, b})
  end)

  it('broadcasting [N,C] with [C] on both sides', function()
    local a, c = leaf({4, 3}), leaf({3}, 0.5, 2)
    gradcheck(function(x, y) return x + y end, {a, c})
    gradcheck(function(x, y) return y - x end, {a, c})
    gradcheck(function(x, y) return x * y end, {a, c})
    gradcheck(function(x, y) return x / y end, {a, c})
  end)

  it('broadcasting [N,1] with [1,M] and 3-D shapes', function()
    local p, q = leaf({3, 1}, 0.5, 2), leaf({1, 4}, 0.5, 2)
    gradcheck(function(x, y) return x * y end, {p, q})
    gradcheck(function(x, y) return x / y end, {p, q})
    gradcheck(function(x, y) return y - x end, {p, q})
    local r, s = leaf({2, 1, 3}), leaf({4, 1})
    gradcheck(function(x, y) return x * y + x end, {r, s})
  end)

  it('a scalar tensor broadcast against a matrix', function()
    local a, s = leaf({2, 3}), leaf({}, 0.5, 1.5)
    gradcheck(function(x, y) return x * y end, {a, s})
    gradcheck(function(x, y) return y / x end, {away_from_zero({2, 3}, 0.5, 1.5), s})
  end)

  it('numbers on either side', function()
    local a = away_from_zero({2, 3}, 0.5, 1.5)
    gradcheck(function(x) return x + 2 end, {a})
    gradcheck(function(x) return 2 + x end, {a})
    gradcheck(function(x) return x - 3 end, {a})
    gradcheck(function(x) return 3 - x end, {a})
    gradcheck(function(x) return x * -1.5 end, {a})
    gradcheck(function(x) return 2.5 * x end, {a})
    gradcheck(function(x) return x / 4 end, {a})
    gradcheck(function(x) return 2 / x end, {a})
  end)

  it('the same tensor on both sides', function()
    local a = leaf({3})
    gradcheck(function(x) return x * x end, {a})
    gradcheck(function(x) return x + x end, {a})
    gradcheck(function(x) return x / (x * x + 1) end, {a})
  end)
end)

describe('gradients of unary ops (finite differences)', function()
  it('neg, exp, log, sqrt', function()
    gradcheck(function(x) return -x end, {leaf({5})})
    gradcheck(function(x) return x:neg() end, {leaf({5})})
    gradcheck(function(x) return x:exp() end, {leaf({2, 3})})
    gradcheck(function(x) return x:log() end, {leaf({2, 3}, 0.5, 2)})
    gradcheck(function(x) return x:sqrt() end, {leaf({2, 3}, 0.5, 2)})
  end)

  it('pow with exponents 2, 3, 0.5, -1 and -2.5', function()
    local x = leaf({6}, 0.5, 2)
    for _, p in ipairs {2, 3, 0.5, -1, -2.5} do
      gradcheck(function(y) return y:pow(p) end, {x})
    end
    gradcheck(function(y) return y ^ 2 end, {leaf({4})})
  end)

  it('abs and relu away from their kink', function()
    local x = away_from_zero({8}, 0.1, 1)
    gradcheck(function(y) return y:abs() end, {x})
    gradcheck(function(y) return y:relu() end, {x})
    gradcheck(function(y) return F.relu(y) end, {x})
  end)
end)

describe('gradients of matmul, linear, reductions (finite differences)', function()
  it('matmul, both operands', function()
    gradcheck(function(a, b) return a:matmul(b) end, {leaf({3, 4}), leaf({4, 2})})
  end)

  it('linear with and without bias', function()
    local x, w, b = leaf({3, 4}), leaf({2, 4}), leaf({2})
    gradcheck(function(p, q, r) return F.linear(p, q, r) end, {x, w, b})
    gradcheck(function(p, q) return F.linear(p, q) end, {x, w})
  end)

  it('linear with a weight that needs no grad', function()
    local x, w = leaf({3, 4}), gam.rand(2, 4)
    gradcheck(function(p) return F.linear(p, w) end, {x})
    assert.is_nil(w.grad)
  end)

  it('sum and mean of everything', function()
    local x = leaf({2, 3})
    gradcheck(function(y) return y:sum() end, {x})
    gradcheck(function(y) return y:mean() end, {x})
  end)

  it('sum and mean along dims, with keepdim', function()
    local x = leaf({2, 3, 4})
    for d = 1, 3 do
      gradcheck(function(y) return y:sum(d) end, {x})
      gradcheck(function(y) return y:mean(d, true) end, {x})
    end
    gradcheck(function(y) return y:sum(-1, true) * y end, {x})
  end)

  it('max of everything and along a dim (distinct values)', function()
    local x = gam.randperm(12):float():reshape(3, 4):detach():requires_grad_()
    gradcheck(function(y) return y:max() end, {x}, {eps = 0.1})
    gradcheck(function(y) return (y:max(1)) end, {x}, {eps = 0.1})
    gradcheck(function(y) return (y:max(2, true)) end, {x}, {eps = 0.1})
  end)
end)

describe('gradients of softmax, gather and losses (finite differences)', function()
  it('softmax and log_softmax along each dim', function()
    local x = leaf({3, 4})
    for _, d in ipairs {1, 2, -1} do
      gradcheck(function(y) return y:softmax(d) end, {x})
      gradcheck(function(y) return y:log_softmax(d) end, {x})
    end
    local z = leaf({2, 3, 2})
    gradcheck(function(y) return y:softmax(2) end, {z})
    gradcheck(function(y) return y:log_softmax(2) end, {z})
  end)

  it('gather, including repeated indices', function()
    local x = leaf({3, 4})
    gradcheck(function(y) return y:gather(2, long{{0, 0}, {3, 1}, {2, 2}}) end, {x})
    gradcheck(function(y) return y:gather(1, long{{2, 0, 1, 2}, {2, 2, 2, 2}}) end, {x})
  end)

  it('cross_entropy and smooth_cross_entropy per sample', function()
    local logits = leaf({4, 5}, -2, 2)
    local target = long{0, 4, 2, 2}
    gradcheck(function(y) return F.cross_entropy(y, target) end, {logits})
    gradcheck(function(y) return F.smooth_cross_entropy(y, target, 0.1) end, {logits})
    gradcheck(function(y) return F.smooth_cross_entropy(y, target, 0.3):mean() end, {logits})
  end)

  it('smooth_cross_entropy gradient is softmax minus the smoothed target', function()
    local logits = leaf({2, 3})
    F.smooth_cross_entropy(logits, long{1, 2}, 0.2):sum():backward()
    local p = logits:detach():softmax(2):totable()
    local q = {{0.1, 0.8, 0.1}, {0.1, 0.1, 0.8}}
    local want = {}
    for i = 1, 2 do
      want[i] = {}
      for k = 1, 3 do want[i][k] = p[i][k] - q[i][k] end
    end
    close(logits.grad, want, 1e-6, 1e-5)
  end)
end)

describe('gradients through views, transpose, cat, clone (finite differences)', function()
  it('reshape, view and flatten', function()
    local x = leaf({2, 3})
    local c = gam.rand(3, 2)
    gradcheck(function(y) return y:reshape(3, 2) * c end, {x})
    gradcheck(function(y) return y:view(-1) end, {x})
    gradcheck(function(y) return y:flatten():exp() end, {x})
  end)

  it('narrow and select', function()
    local x = leaf({4, 3})
    gradcheck(function(y) return y:narrow(1, 2, 2) * 3 end, {x})
    gradcheck(function(y) return y:select(3):exp() end, {x})
    gradcheck(function(y) return y[1] * y[4] end, {x})
    gradcheck(function(y) return y:narrow(1, 1, 2) + y:narrow(1, 3, 2) end, {x})
  end)

  it('transpose', function()
    local x, m = leaf({2, 3}), leaf({2, 4})
    gradcheck(function(y, z) return y:t():matmul(z) end, {x, m})
  end)

  it('cat along dims 1, 2 and 3, with an input that needs no grad', function()
    local a, b = leaf({2, 2, 3}), leaf({2, 1, 3})
    local c = gam.rand(2, 2, 3)
    gradcheck(function(x) return gam.cat({x, x * 2}, 1) end, {a})
    gradcheck(function(x, y) return gam.cat({x, y}, 2):exp() end, {a, b})
    gradcheck(function(x) return gam.cat({c, x, c}, 3) end, {a})
    assert.is_nil(c.grad)
  end)

  it('clone', function()
    gradcheck(function(y) return y:clone() * y end, {leaf({5})})
  end)

  it('a small MLP end to end', function()
    local x = gam.rand(4, 3)
    local w1, b1 = leaf({5, 3}), leaf({5})
    local w2, b2 = leaf({3, 5}), leaf({3})
    local target = long{0, 2, 1, 1}
    gradcheck(function(p, q, r, s)
      local h = F.linear(x, p, q):exp():log():relu() + 0.5
      return F.smooth_cross_entropy(F.linear(h, r, s), target, 0.1):mean()
    end, {w1, b1, w2, b2})
  end)
end)

describe('autograd semantics', function()
  it('gradients accumulate over two backward calls', function()
    local x = t{1, 2, 3}:requires_grad_()
    ;(x * x):sum():backward()
    close(x.grad, {2, 4, 6})
    ;(x * x):sum():backward()
    close(x.grad, {4, 8, 12})
    x.grad = nil
    assert.is_nil(x.grad)
    ;(x * 3):sum():backward()
    close(x.grad, {3, 3, 3})
    x.grad:zero_()
    ;(x * 3):sum():backward()
    close(x.grad, {3, 3, 3})
  end)

  it('a value used twice (a diamond) gets both gradients', function()
    local x = t{1, 2}:requires_grad_()
    local y = x * 2
    local z = y * y + y -- dz/dx = (2y + 1) * 2
    z:sum():backward()
    close(x.grad, {(2 * 2 + 1) * 2, (2 * 4 + 1) * 2})
  end)

  it('backward of a non-scalar takes the output gradient and leaves it untouched', function()
    local x = t{1, 2, 3}:requires_grad_()
    local y = x * 2
    local g = t{1, 10, 100}
    y:backward(g)
    close(x.grad, {2, 20, 200})
    local x2 = t{1, 2}:requires_grad_()
    local y2 = x2 * 1
    local z = y2 + y2
    local g2 = t{1, 2}
    z:backward(g2)
    close(g2, {1, 2})
    close(x2.grad, {2, 4})
    -- a leaf takes the gradient directly, as a copy
    local leafx = t{0, 0}:requires_grad_()
    local g3 = t{5, 6}
    leafx:backward(g3)
    leafx.grad:fill_(0)
    close(g3, {5, 6})
  end)

  it('a second backward through the same graph is an error', function()
    local x = t{1, 2}:requires_grad_()
    local loss = (x:exp() * 2):sum()
    loss:backward()
    local ok, err = pcall(loss.backward, loss)
    assert.is_false(ok)
    assert.truthy(err:find('already used by a backward', 1, true), err)
    -- and so is a backward through a part of a freed graph
    local y = x * 3
    ;(y * 2):sum():backward()
    ok, err = pcall(function() (y * 4):sum():backward() end)
    assert.is_false(ok)
    assert.truthy(err:find('already used', 1, true), err)
    -- a fresh forward works again
    x.grad = nil
    ;(x * 3):sum():backward()
    close(x.grad, {3, 3})
  end)

  it('no_grad records nothing and restores the mode, also after an error', function()
    local x = t{1, 2}:requires_grad_()
    assert.is_true(gam.is_grad_enabled())
    local y = gam.no_grad(function()
      assert.is_false(gam.is_grad_enabled())
      return x * 2
    end)
    assert.is_false(y.requires_grad)
    assert.is_nil(y:grad_fn())
    assert.is_true(gam.is_grad_enabled())
    assert.is_false(pcall(gam.no_grad, function() error('inside') end))
    assert.is_true(gam.is_grad_enabled())
    local z = gam.no_grad(function() return gam.enable_grad(function() return x * 2 end) end)
    assert.is_true(z.requires_grad)
    assert.are.equal('mul', z:grad_fn())
    local a, b = gam.no_grad(function(p, q) return p + 1, q + 1 end, 1, 2)
    assert.are.same({2, 3}, {a, b})
  end)

  it('requires_grad_ on leaves only, float32 only', function()
    local x = t{1, 2}
    assert.is_false(x.requires_grad)
    x:requires_grad_()
    assert.is_true(x.requires_grad)
    x:requires_grad_(false)
    assert.is_false(x.requires_grad)
    x.requires_grad = true
    assert.is_true(x.requires_grad)
    local y = x * 2
    assert.is_true(y.requires_grad)
    local ok, err = pcall(y.requires_grad_, y, false)
    assert.is_false(ok)
    assert.truthy(err:find('only leaf tensors', 1, true), err)
    ok, err = pcall(function() long{1}:requires_grad_() end)
    assert.is_false(ok)
    assert.truthy(err:find('float32', 1, true), err)
  end)

  it('only inputs that require grad get one', function()
    local x, c = t{1, 2}:requires_grad_(), t{3, 4}
    ;(x * c):sum():backward()
    close(x.grad, {3, 4})
    assert.is_nil(c.grad)
    local d = c * 2
    assert.is_false(d.requires_grad)
    local ok, err = pcall(function() d:sum():backward() end)
    assert.is_false(ok)
    assert.truthy(err:find('does not require grad', 1, true), err)
  end)

  it('detach cuts the graph', function()
    local x = t{1, 2}:requires_grad_()
    local y = (x * 2):detach()
    assert.is_false(y.requires_grad)
    local z = (y * x):sum()
    z:backward()
    close(x.grad, {2, 4}) -- only through the direct x
  end)

  it('setting .grad checks the shape', function()
    local x = t{1, 2}:requires_grad_()
    x.grad = t{5, 5}
    ;(x * 1):sum():backward()
    close(x.grad, {6, 6})
    local ok, err = pcall(function() x.grad = t{1, 2, 3} end)
    assert.is_false(ok)
    assert.truthy(err:find('[3]', 1, true) and err:find('[2]', 1, true), err)
  end)

  it('grad_fn names the op that made a tensor', function()
    local x = t{{1, 2}}:requires_grad_()
    assert.is_nil(x:grad_fn())
    assert.are.equal('add', (x + x):grad_fn())
    assert.are.equal('matmul', x:matmul(x:t()):grad_fn())
    assert.are.equal('reshape', x:reshape(2):grad_fn())
    assert.are.equal('cat', gam.cat({x, x}):grad_fn())
  end)

  it('a chain of 200000 ops runs backward and frees without deep recursion', function()
    local x = t{1}:requires_grad_()
    gam.scope(function()
      local s = x
      for _ = 1, 200000 do s = s * 1 end
      s:sum():backward()
    end)
    close(x.grad, {1})
  end)
end)
