-- Deterministic memory: scopes release what they do not return, a training
-- loop returns the engine's counters to their baseline without the garbage
-- collector, and released tensors raise clear errors.
local gam = require 'gam'
local F = gam.F

local function live() return gam.memory().live_tensors, gam.memory().live_bytes end

-- Tensors made outside any scope by earlier tests are garbage that Lua's
-- collector may free at any moment, which would move a baseline. Each test
-- starts by collecting that garbage; what the test itself checks never
-- calls the collector.
local function settle()
  collectgarbage()
  collectgarbage()
end
before_each(settle)

describe('a training-like loop', function()
  it('returns live tensors and bytes to the baseline every iteration, without collectgarbage', function()
    gam.manual_seed(0)
    local n, din, dh, k = 16, 8, 32, 4
    local x, y, params = gam.scope(function()
      local ps = {
        w1 = (gam.randn(dh, din) * 0.3):detach():requires_grad_(), b1 = gam.zeros({dh}, {requires_grad = true}),
        w2 = (gam.randn(k, dh) * 0.3):detach():requires_grad_(), b2 = gam.zeros({k}, {requires_grad = true}),
      }
      for _, p in pairs(ps) do p.grad = gam.zeros(p:shape()) end
      return gam.randn(n, din), gam.randint(0, k, {n}), ps
    end)
    local base_t, base_b = live()
    local first, last
    for it = 1, 1000 do
      local loss = gam.scope(function()
        local h = F.linear(x, params.w1, params.b1):relu()
        local l = F.smooth_cross_entropy(F.linear(h, params.w2, params.b2), y, 0.1):mean()
        l:backward()
        gam.no_grad(function()
          for _, p in pairs(params) do
            p:add_(p.grad, -0.1)
            p.grad:zero_()
          end
        end)
        return l:item()
      end)
      first = first or loss
      last = loss
      local nt, nb = live()
      if nt ~= base_t or nb ~= base_b then
        error(string.format('iteration %d: %d tensors / %d bytes live, baseline %d / %d', it, nt, nb, base_t, base_b))
      end
    end
    assert.is_true(last < first * 0.5, string.format('loss went from %g to %g', first, last))
  end)
end)

describe('gam.scope', function()
  it('releases what the function does not return and keeps what it returns', function()
    local t0, b0 = live()
    local kept = gam.scope(function()
      local a = gam.ones(100)
      local b = a * 2
      local c = b + 1
      return c
    end)
    local t1, b1 = live()
    assert.are.equal(t0 + 1, t1)
    assert.is_true(b1 - b0 >= 400 and b1 - b0 < 400 + 64)
    assert.are.same({3, 3}, {kept:tolist()[1], kept:tolist()[100]})
    gam.release(kept)
    local t2, b2 = live()
    assert.are.equal(t0, t2)
    assert.are.equal(b0, b2)
  end)

  it('keeps tensors inside returned tables at any depth, and several return values', function()
    local t0 = live()
    local a, tbl = gam.scope(function()
      local _ = gam.zeros(5)   -- made in the scope, not returned: released
      return gam.ones(1), {x = {y = {z = {w = {gam.ones(2)}}}}, n = 3}
    end)
    assert.are.equal(t0 + 2, (live()))
    assert.are.same({1, 1}, tbl.x.y.z.w[1]:tolist())
    assert.are.equal(3, tbl.n)
    gam.release(a)
    gam.release(tbl.x.y.z.w[1])
    assert.are.equal(t0, (live()))
  end)

  it('nests: a tensor returned by an inner scope belongs to the outer one', function()
    local t0 = live()
    gam.scope(function()
      local inner = gam.scope(function() return gam.ones(3), gam.zeros(3) end)
      assert.are.same({1, 1, 1}, inner:tolist())
      assert.are.equal(t0 + 2, (live()))
    end)
    assert.are.equal(t0, (live()))
  end)

  it('gam.keep lets a tensor outlive its scope', function()
    local t0 = live()
    local holder = {}
    gam.scope(function()
      holder.t = gam.keep(gam.ones(4))
      holder.m = gam.keep({a = gam.ones(1), b = {gam.ones(1)}})
      gam.ones(9)
    end)
    assert.are.equal(t0 + 3, (live()))
    assert.are.same({1, 1, 1, 1}, holder.t:tolist())
    for _, v in ipairs {holder.t, holder.m.a, holder.m.b[1]} do gam.release(v) end
    assert.are.equal(t0, (live()))
  end)

  it('releases everything on an error and passes the error on', function()
    local t0, b0 = live()
    local ok, err = pcall(gam.scope, function()
      local a = gam.ones(1000)
      local _ = a * a
      error('failed inside')
    end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find('failed inside', 1, true))
    local t1, b1 = live()
    assert.are.equal(t0, t1)
    assert.are.equal(b0, b1)
    -- and the scope stack is intact: the next scope still releases
    gam.scope(function() gam.ones(10) end)
    assert.are.equal(t0, (live()))
    assert.are.equal(0, require('gam.tensor').scope_depth())
  end)

  it('frees graph intermediates that a returned tensor does not need', function()
    local x = gam.ones({50}, {requires_grad = true})
    local t0 = live()
    local loss = gam.scope(function()
      local h = (x * 2):exp():log()
      return (h * h):sum()
    end)
    loss:backward()
    gam.release(loss)
    local g = x.grad -- a second handle on the same engine tensor
    assert.are.equal(t0 + 1, (live()))
    assert.are.equal(8, g:tolist()[1]) -- d(2x)^2/dx at x = 1
    gam.release(g)
    assert.are.equal(t0 + 1, (live()))
    x.grad = nil
    assert.are.equal(t0, (live()))
  end)

  it('a view keeps its storage alive after the base tensor is released', function()
    local t0, b0 = live()
    local v = gam.scope(function()
      local base = gam.arange(1000)
      return base:reshape(10, 100)
    end)
    assert.are.equal(t0 + 1, (live()))
    assert.is_true(select(2, live()) - b0 >= 4000)
    assert.are.equal(999, v:tolist()[1000])
    gam.release(v)
    local t1, b1 = live()
    assert.are.equal(t0, t1)
    assert.are.equal(b0, b1)
  end)

  it('outside any scope, tensors are freed when Lua collects them', function()
    local t0 = live()
    do
      for _ = 1, 10 do local _ = gam.ones(10) * 2 end
    end
    collectgarbage()
    collectgarbage()
    assert.are.equal(t0, (live()))
  end)

  it('the cache keeps freed large blocks for reuse and empty_cache gives them back', function()
    gam.scope(function() gam.zeros(100000) end)
    assert.is_true(gam.memory().cached_bytes >= 400000)
    gam.empty_cache()
    assert.are.equal(0, gam.memory().cached_bytes)
  end)
end)

describe('released tensors', function()
  local function released()
    gam.scope(function() _G.__escaped = gam.ones(2, 2); return 1 end)
    local t = _G.__escaped
    _G.__escaped = nil
    return t
  end

  it('raise a clear Lua error on every use, not a crash', function()
    local t = released()
    local uses = {
      function() return t + 1 end,
      function() return 1 + t end,
      function() return gam.ones(2, 2) * t end,
      function() return -t end,
      function() return t:sum() end,
      function() return t:exp() end,
      function() return t:reshape(4) end,
      function() return t:numel() end,
      function() return t:shape() end,
      function() return t:item() end,
      function() return t[1] end,
      function() return #t end,
      function() return t.grad end,
      function() return t:matmul(t) end,
      function() return F.linear(gam.ones(2, 2), t) end,
      function() return F.cross_entropy(t, gam.zeros({2}, {dtype = 'int64'})) end,
      function() return gam.cat({gam.ones(2, 2), t}) end,
      function() return t:copy_(gam.ones(4)) end,
      function() return gam.ones(4):copy_(t) end,
      function() return t:backward() end,
      function() return t:totable() end,
    }
    for i, use in ipairs(uses) do
      local ok, err = pcall(use)
      assert.is_false(ok, 'use ' .. i .. ' did not fail')
      assert.truthy(tostring(err):find('released tensor', 1, true), 'use ' .. i .. ': ' .. tostring(err))
    end
    assert.are.equal('tensor(<released>)', tostring(t))
    assert.is_false(t:is_alive())
  end)

  it('gam.release frees at once and a second release is harmless', function()
    local t0 = live()
    local t = gam.ones(3)
    gam.release(t)
    gam.release(t)
    assert.are.equal(t0, (live()))
    assert.is_false(pcall(function() return t * 2 end))
  end)
end)
