-- gam.dist in a process started alone: rank 0 of a world of size 1, every
-- collective the identity (the MPI specs are tests/dist/*_mpi.lua).
local gam = require 'gam'
local dist = gam.dist

describe('dist alone', function()
  it('is rank 0 of 1 and needs no MPI', function()
    local r, n = dist.init()
    assert.are.equal(0, r)
    assert.are.equal(1, n)
    assert.are.equal(0, dist.rank())
    assert.are.equal(1, dist.size())
    assert.is_true(dist.is_initialized())
  end)

  it('collectives leave tensors as they are', function()
    dist.init()
    local t = gam.tensor({{1.5, -2}, {3, 4}})
    assert.are.equal(t, dist.all_reduce(t, 'mean'))
    dist.all_reduce(t, 'sum')
    dist.broadcast(t, 0)
    dist.barrier()
    assert.are.same({{1.5, -2}, {3, 4}}, t:totable())
    assert.are.same({3, 4}, dist.sum_numbers({3, 4}))
    local m = gam.nn.Linear(3, 2)
    local before = m.weight:totable()
    dist.broadcast_parameters(m, 0)
    assert.are.same(before, m.weight:totable())
  end)

  it('all_reduce_grad and SyncBatchNorm are the single-process ops', function()
    local x = gam.tensor({1, -2, 3}):requires_grad_(true)
    local y = dist.all_reduce_grad(x)
    ;(y * y):sum():backward()
    assert.are.same({2, -4, 6}, x.grad:totable())
    gam.manual_seed(3)
    local xb = gam.randn({4, 3, 5, 5})
    local a, b = gam.nn.BatchNorm2d(3), gam.nn.SyncBatchNorm(3)
    assert.is_true((a(xb) - b(xb)):abs():max():item() == 0)
    assert.are.equal('SyncBatchNorm', tostring(b):match('^(%w+)'))
  end)

  it('checks its arguments', function()
    dist.init()
    assert.has_error(function() dist.broadcast(gam.tensor({1}), 1) end,
                     'dist.broadcast: root 1 is not a rank (size 1)')
    assert.has_error(function() dist.all_reduce(gam.tensor({1}, {dtype = 'int64'}), 'mean') end,
                     "dist.all_reduce: 'mean' needs a float32 tensor, got int64 (use 'sum')")
    assert.has_error(function() dist.all_reduce(gam.tensor({1}), 'avg') end,
                     "dist.all_reduce: op must be 'sum' or 'mean', got avg")
    assert.has_error(function() dist.broadcast_parameters({}, 0) end,
                     'dist.broadcast_parameters: model must be an nn module')
  end)

  it('a CUDA build has NCCL built in when the toolkit has it (kernels/nccl.cu)', function()
    local lib = _GAMLUA and _GAMLUA.lib
    assert.truthy(lib)
    local p = io.popen('nm -D --defined-only ' .. lib .. ' 2>/dev/null')
    local syms = p:read('*a')
    p:close()
    -- the collectives of both backend tables are always there
    assert.truthy(syms:find('gam_cpu_all_reduce', 1, true))
    if gam.cuda_built() then
      assert.truthy(syms:find('gam_cuda_all_reduce', 1, true))
      local nccl = io.open((os.getenv('CUDA_HOME') or '/usr/local/cuda') .. '/lib64/libnccl.so', 'rb')
      if nccl then
        nccl:close()
        local l = io.popen('ldd ' .. lib)
        local deps = l:read('*a')
        l:close()
        assert.truthy(deps:find('libnccl', 1, true), 'libgam.so does not link NCCL:\n' .. deps)
      end
    end
  end)
end)
