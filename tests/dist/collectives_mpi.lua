-- gam.dist collectives on every rank of a 2-process MPI job, against results
-- computed by hand from each rank's known contribution.
local gam = require 'gam'
local dist = gam.dist
local nn = gam.nn

local r, n = dist.rank(), dist.size()
-- sum over ranks q of f(q)
local function over_ranks(f)
  local s = 0
  for q = 0, n - 1 do s = s + f(q) end
  return s
end

local function values(numel, f)
  local t = {}
  for i = 1, numel do t[i] = f(i) end
  return t
end

describe('dist (MPI)', function()
  it('runs under mpirun with two ranks', function()
    assert.is_true(dist.is_initialized())
    assert.are.equal(2, n)
    assert.is_true(r == 0 or r == 1)
    local ranks = dist.sum_numbers({r, 1})
    assert.are.same({1, 2}, ranks)
  end)

  for _, shape in ipairs {{7}, {3, 4}, {2, 3, 5}, {1}} do
    local numel = 1
    for _, s in ipairs(shape) do numel = numel * s end
    local label = '[' .. table.concat(shape, ',') .. ']'
    it('all_reduce sum and mean of float32 ' .. label, function()
      local f = function(q, i) return (q + 1) * i + 0.25 * q end
      local t = gam.tensor(values(numel, function(i) return f(r, i) end)):view(shape)
      local got = dist.all_reduce(t, 'sum')
      assert.are.equal(t, got)
      local flat = t:reshape({numel}):totable()
      for i = 1, numel do
        assert.are.equal(over_ranks(function(q) return f(q, i) end), flat[i])
      end
      local m = gam.tensor(values(numel, function(i) return f(r, i) end)):view(shape)
      dist.all_reduce(m, 'mean')
      flat = m:reshape({numel}):totable()
      for i = 1, numel do
        assert.is_true(math.abs(over_ranks(function(q) return f(q, i) end) / n - flat[i]) < 1e-6)
      end
    end)
  end

  it('all_reduce sum of int64 (beyond float precision) and uint8', function()
    local big = 2 ^ 40
    local t = gam.tensor({big + r, -3 * (r + 1), 0}, {dtype = 'int64'})
    dist.all_reduce(t)
    assert.are.same({2 * big + 1, -9, 0}, t:totable())
    local u = gam.tensor({10 + r, 100}, {dtype = 'uint8'})
    dist.all_reduce(u, 'sum')
    assert.are.same({21, 200}, u:totable())
  end)

  it('all_reduce of a slice changes only the slice', function()
    local t = gam.tensor({1, 2, 3, 4, 5}) * (r + 1)
    dist.all_reduce(t:narrow(1, 2, 3))
    assert.are.same({r + 1, 6, 9, 12, 5 * (r + 1)}, t:totable())
  end)

  it('broadcast from rank 0 and rank 1, every dtype', function()
    for root = 0, 1 do
      local f = gam.tensor({{r, r + 0.5}, {-r, 7}})
      dist.broadcast(f, root)
      assert.are.same({{root, root + 0.5}, {-root, 7}}, f:totable())
      local i = gam.tensor({r * 1000, 2 ^ 50 + r}, {dtype = 'int64'})
      dist.broadcast(i, root)
      assert.are.same({root * 1000, 2 ^ 50 + root}, i:totable())
      local u = gam.tensor({r, 255}, {dtype = 'uint8'})
      dist.broadcast(u, root)
      assert.are.same({root, 255}, u:totable())
    end
  end)

  it('an empty tensor is a no-op, barrier returns', function()
    local e = gam.zeros({0})
    dist.all_reduce(e, 'mean')
    dist.broadcast(e, 1)
    dist.barrier()
    assert.are.equal(0, e:numel())
  end)

  it('refuses bad arguments with clear errors (on every rank, no hang)', function()
    assert.has_error(function() dist.all_reduce(gam.tensor({1}, {dtype = 'int64'}), 'mean') end,
                     "dist.all_reduce: 'mean' needs a float32 tensor, got int64 (use 'sum')")
    assert.has_error(function() dist.all_reduce(gam.tensor({1}), 'max') end,
                     "dist.all_reduce: op must be 'sum' or 'mean', got max")
    assert.has_error(function() dist.broadcast(gam.tensor({1}), 2) end,
                     'dist.broadcast: root 2 is not a rank (size 2)')
    assert.has_error(function() dist.all_reduce('x') end)
  end)

  it('broadcast_parameters gives every rank rank 0\'s parameters and buffers', function()
    gam.manual_seed(100 + r)   -- different initial weights per rank
    local model = nn.Sequential{nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(12, 2)}
    model:flat_parameters()
    for _, e in ipairs(model:named_buffers()) do
      if e.tensor:dtype() == 'float32' then e.tensor:fill_(r + 2) end
    end
    dist.broadcast_parameters(model, 0)
    local sums = {}
    for _, e in ipairs(model:named_parameters()) do sums[#sums + 1] = e.tensor:sum():item() end
    for _, e in ipairs(model:named_buffers()) do sums[#sums + 1] = e.tensor:float():sum():item() end
    local total = dist.sum_numbers(sums)
    for k = 1, #sums do assert.are.equal(n * sums[k], total[k]) end
    gam.manual_seed(100)
    local ref = nn.Sequential{nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(12, 2)}
    assert.are.same(ref:named_parameters()[1].tensor:totable(), model:named_parameters()[1].tensor:totable())
  end)

  it('broadcast_parameters fails on every rank when the models differ', function()
    local model = nn.Linear(4, 3 + r)
    assert.has_error(function() dist.broadcast_parameters(model, 0) end)
    local ok, err = pcall(dist.broadcast_parameters, model, 0)
    assert.is_false(ok)
    assert.truthy(err:find('dist.broadcast_parameters: the 2 ranks disagree on the parameter count', 1, true))
  end)
end)
