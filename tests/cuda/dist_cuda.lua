-- gam.dist on cuda tensors in a world of one rank (`make test-cuda`): the
-- collectives leave device tensors as they are without touching NCCL, the
-- differentiable all-reduce passes values and gradients through, and
-- nn.SyncBatchNorm equals BatchNorm2d. (NCCL across ranks needs one GPU per
-- rank: NCCL refuses two ranks on one GPU.)
local gam = require 'gam'
local here = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.'
local H = dofile(here .. '/helpers.lua')
local DEV = H.DEV
local dist, nn = gam.dist, gam.nn

H.require_device('tests/cuda/dist_cuda.lua')

describe('dist on ' .. DEV .. ' (one rank)', function()
  it('collectives are the identity on device tensors', function()
    dist.init()
    assert.are.equal(1, dist.size())
    local t = gam.tensor({{1, 2}, {3, 4}}):to(DEV)
    dist.all_reduce(t, 'mean')
    dist.all_reduce(t, 'sum')
    dist.broadcast(t, 0)
    assert.are.equal(DEV, t:device())
    assert.are.same({{1, 2}, {3, 4}}, t:cpu():totable())
  end)

  it('all_reduce_grad passes values and gradients through', function()
    local x = gam.tensor({1, -2, 3}):to(DEV):requires_grad_(true)
    local y = dist.all_reduce_grad(x)
    assert.are.same({1, -2, 3}, y:cpu():totable())
    ;(y * y):sum():backward()
    assert.are.same({2, -4, 6}, x.grad:cpu():totable())
  end)

  it('SyncBatchNorm equals BatchNorm2d', function()
    gam.manual_seed(3)
    local x = gam.randn({4, 3, 5, 5}):to(DEV)
    local a, b = nn.BatchNorm2d(3):to(DEV), nn.SyncBatchNorm(3):to(DEV)
    local ya, yb = a(x), b(x)
    assert.is_true((ya - yb):abs():max():item() <= 1e-6)
    assert.is_true((a.running_var - b.running_var):abs():max():item() <= 1e-6)
  end)
end)
