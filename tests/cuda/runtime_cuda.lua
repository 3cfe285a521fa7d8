-- The CUDA runtime paths against the host: copies to the device through the
-- page-locked staging ring (values, reuse of the ring, the large direct path,
-- the loader's batches), the count of host waits (none while a forward and
-- backward are queued, one per read), and gam.cuda_info(). Needs a GPU:
-- `make test-cuda`.
local gam = require 'gam'
local F = gam.F
local here = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.'
local H = dofile(here .. '/helpers.lua')
local DEV = H.DEV

H.require_device('tests/cuda/runtime_cuda.lua')

before_each(function() gam.manual_seed(1234) end)

describe('copies to ' .. DEV, function()
  it('staged uploads keep their values, also when the ring wraps and the source changes at once', function()
    local srcs, devs = {}, {}
    for k = 1, 11 do  -- more uploads than staging buffers, of growing sizes
      local x = gam.randn({k * 1000 + 3})
      srcs[k], devs[k] = x:clone(), x:to(DEV)
      if DEV ~= 'cpu' then x:fill_(-7) end  -- the source is overwritten right after the copy was queued
    end
    for k = 1, 11 do assert.are.same(srcs[k]:tolist(), devs[k]:to('cpu'):tolist(), 'upload ' .. k) end
  end)

  it('copies above the staging limit go directly and arrive whole', function()
    local n = 20 * 1024 * 1024  -- 80 MiB of float32, above GAM_CUDA_STAGE_MAX (64 MiB)
    gam.scope(function()
      local x = gam.arange(0, n)
      local d = x:to(DEV)
      assert.are.equal(0, (d:to('cpu') - x):abs():max():item())
    end)
  end)

  it('the loader delivers the same batches on the device', function()
    local ffi = require 'ffi'
    local buf = ffi.new('uint8_t[?]', 40 * 16)
    for j = 0, 40 * 16 - 1 do buf[j] = (j * 37 + 11) % 256 end
    local images = gam.from_buffer(buf, {40, 1, 4, 4}, 'uint8')
    local labels = gam.randint(0, 10, {40})
    local ds = gam.data.dataset {name = 'synthetic', images = images, labels = labels, classes = 10}
    local a = gam.data.loader {dataset = ds, batch_size = 8, shuffle = true, seed = 3}
    local b = gam.data.loader {dataset = ds, batch_size = 8, shuffle = true, seed = 3, device = DEV}
    local n = 0
    a:start()
    b:start()
    while true do
      local x, y = a:next()
      local dx, dy = b:next()
      if not x then
        assert.is_nil(dx)
        break
      end
      assert.are.equal(DEV, dx:device())
      assert.are.same(x:tolist(), dx:to('cpu'):tolist())
      assert.are.same(y:tolist(), dy:to('cpu'):tolist())
      n = n + 1
    end
    assert.are.equal(5, n)
    a:close()
    b:close()
  end)
end)

describe('host waits on ' .. DEV, function()
  it('a queued forward and backward does not wait; reading the loss waits once', function()
    if DEV == 'cpu' then return end
    local x = gam.randn({8, 3, 16, 16}):to(DEV)
    local w = (gam.randn({8, 3, 3, 3}) * 0.1):to(DEV):requires_grad_(true)
    local function step()
      return gam.scope(function()
        local h = F.relu(F.conv2d(x, w, nil, {padding = 1}))
        local logits = F.adaptive_avg_pool2d(h, 1):reshape({8, 8})
        local loss = F.log_softmax(logits, 2):sum() * -1
        loss:backward()
        return loss
      end)
    end
    gam.keep(step())  -- warm up: plans, workspace, cached blocks
    gam.synchronize()
    local w0 = gam.cuda_host_waits()
    local loss = step()
    assert.are.equal(w0, gam.cuda_host_waits(), 'the queued step waited for the device')
    loss:item()
    assert.are.equal(w0 + 1, gam.cuda_host_waits())
  end)
end)

describe('gam.cuda_info()', function()
  it('names the device and the versions', function()
    if DEV == 'cpu' then return end
    local info = assert(gam.cuda_info())
    assert.is_true(info.devices >= 1)
    assert.is_true(#info.name > 0, 'no device name')
    assert.truthy(info.capability:match('^%d+%.%d$'))
    assert.is_true(info.driver_number >= info.runtime_number, 'the driver is older than the runtime')
  end)
end)
