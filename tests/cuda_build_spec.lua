-- The CUDA backend as seen from a run without a GPU (the CPU suite): that it
-- was compiled when it should have been, that a machine without a device says
-- so clearly (and says nothing otherwise), and that memory stats carry the
-- device fields. On a machine with a GPU the same file checks the other side:
-- the device is found and a tensor makes the round trip.
-- The GPU's own tests are tests/cuda/ops_cuda.lua (`make test-cuda`).
local gam = require 'gam'

local T = dofile((debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.') .. '/helpers.lua')
local dirname, q, run = T.dirname, T.q, T.run
local GAMLUA = dirname(_GAMLUA.lib) .. '/gamlua' -- the host beside the library under test

local function exists(path)
  local f = io.open(path, 'rb')
  if f then f:close() end
  return f ~= nil
end

-- nvcc where the Makefile looks for it: $CUDA_HOME/bin, /usr/local/cuda/bin, the PATH
local function nvcc_found()
  local home = os.getenv('CUDA_HOME')
  if home and home ~= '' and exists(home .. '/bin/nvcc') then return true end
  if exists('/usr/local/cuda/bin/nvcc') then return true end
  local out, code = run('command -v nvcc')
  return code == 0 and out:find('nvcc') ~= nil
end

-- a GPU this process may use: an NVIDIA device node, not hidden by CUDA_VISIBLE_DEVICES
local function gpu_present()
  local vis = os.getenv('CUDA_VISIBLE_DEVICES')
  if vis == '' or vis == '-1' then return false end
  return exists('/dev/nvidia0')
end

local function errmsg(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, 'expected an error, the call succeeded')
  return tostring(err)
end

describe('the CUDA backend build', function()
  it('is compiled in exactly when the build asked for it (make sets GAM_EXPECT_CUDA; else: nvcc exists)', function()
    local expect = os.getenv('GAM_EXPECT_CUDA')
    local want
    if expect == '1' then want = true
    elseif expect == '0' then want = false
    else want = nvcc_found() end
    assert.are.equal(want, gam.cuda_built(),
                     'GAM_EXPECT_CUDA=' .. tostring(expect) .. ', nvcc found: ' .. tostring(nvcc_found()))
  end)

  it('reports device memory in gam.memory()', function()
    local m = gam.memory()
    assert.are.equal('number', type(m.device_live_bytes))
    assert.are.equal('number', type(m.device_cached_bytes))
    assert.is_true(m.device_live_bytes >= 0 and m.device_cached_bytes >= 0)
    assert.is_true(m.live_bytes >= m.device_live_bytes) -- live_bytes counts every device
    assert.are.equal('number', type(m.device_workspace_bytes))
    assert.is_true(m.device_workspace_bytes >= 0 and m.device_workspace_bytes <= m.device_live_bytes)
  end)
end)

if not gpu_present() then
  describe('without a GPU', function()
    it('cuda_available() is false and cuda tensors are a clear error', function()
      assert.is_false(gam.cuda_available())
      local want = gam.cuda_built() and 'no CUDA device is available' or 'not available in this build'
      local e = errmsg(function() return gam.zeros({2}):to('cuda') end)
      assert.truthy(e:find('to: ', 1, true) and e:find(want, 1, true) and e:find('cuda', 1, true), e)
      e = errmsg(function() return gam.zeros({2}, {device = 'cuda'}) end)
      assert.truthy(e:find(want, 1, true), e)
      e = errmsg(function() return gam.randn({2, 3}, {device = 'cuda'}) end)
      assert.truthy(e:find(want, 1, true), e)
      e = errmsg(function() return gam.ones(2):cuda() end)
      assert.truthy(e:find(want, 1, true), e)
      -- asking again gives the same answer, and no device memory was taken
      assert.is_false(gam.cuda_available())
      assert.are.equal(0, gam.memory().device_live_bytes)
      assert.are.equal(0, gam.memory().device_cached_bytes)
      assert.are.equal(0, gam.memory().device_workspace_bytes)
    end)

    it('leaves a CPU run quiet: nothing is printed, however CUDA is asked for', function()
      local code = [[
        local gam = require 'gam'
        local x = gam.ones(3) * 2
        gam.synchronize()
        gam.empty_cache()
        local ok = pcall(function() return x:to('cuda') end)
        io.write(tostring(gam.cuda_available()), ' ', tostring(ok), ' ', x:sum():item())
      ]]
      local out, rc = run(q(GAMLUA) .. ' -e ' .. q(code))
      assert.are.equal(0, rc, out)
      assert.are.equal('false false 6', out)
    end)
  end)
else
  describe('with a GPU', function()
    it('cuda_available() is true and a tensor makes the round trip', function()
      assert.is_true(gam.cuda_built(), 'a GPU is present but libgam was built without CUDA')
      assert.is_true(gam.cuda_available())
      local x = gam.tensor{{1, 2}, {3, 4}}
      local d = x:to('cuda')
      assert.are.equal('cuda', d:device())
      assert.are.same({{1, 2}, {3, 4}}, d:to('cpu'):totable())
    end)
  end)
end

-- The engine's sources, read where the spec lives (tests/../engine).
local ENGINE = (debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.') .. '/../engine'

describe('one dispatch', function()
  it('only backend.c (the tables) and core.c (the device type) name GAM_CUDA among engine/*.c', function()
    local allowed = {['backend.c'] = true, ['core.c'] = true}
    local out, code = run('ls ' .. q(ENGINE) .. '/*.c')
    assert.are.equal(0, code, out)
    local seen = 0
    for path in out:gmatch('[^\n]+') do
      local f = assert(io.open(path, 'rb'))
      local src = f:read('*a')
      f:close()
      seen = seen + 1
      local name = path:match('([^/]+)$')
      if not allowed[name] then
        assert.is_nil(src:find('GAM_CUDA', 1, true),
                      name .. ' names GAM_CUDA: its device work belongs in the backend table')
        assert.is_nil(src:find('gam_cuda_', 1, true), name .. ' calls a cuda wrapper directly')
      end
    end
    assert.is_true(seen >= 10, 'found only ' .. seen .. ' engine sources under ' .. ENGINE)
  end)

  it('every entry of the backend table is filled in both tables', function()
    local function read(name)
      local f = assert(io.open(ENGINE .. '/' .. name, 'rb'))
      local s = f:read('*a')
      f:close()
      return s
    end
    local h, c = read('backend.h'), read('backend.c')
    local body = h:match('typedef struct gam_backend {(.-)} gam_backend;')
    assert.truthy(body, 'struct gam_backend not found in backend.h')
    local fields = {}
    for name in body:gmatch('%(%*([%w_]+)%)') do fields[#fields + 1] = name end
    assert.is_true(#fields >= 40, 'found only ' .. #fields .. ' entries')
    for _, table_name in ipairs({'gam__cpu_backend', 'gam__cuda_backend'}) do
      local init = c:match('const gam_backend ' .. table_name .. ' = {(.-)\n};')
      assert.truthy(init, table_name .. ' not found in backend.c')
      for _, f in ipairs(fields) do
        assert.truthy(init:find('%.' .. f .. ' = '), table_name .. ' leaves .' .. f .. ' empty')
      end
    end
  end)
end)

describe('the CUDA build', function()
  it('links the device kernels and runtime paths into libgam', function()
    if not gam.cuda_built() then return end
    local out, code = run('nm -D --defined-only ' .. q(_GAMLUA.lib))
    assert.are.equal(0, code, out)
    for _, sym in ipairs {'gam_cuda_dropout_mask', 'gam_cuda__upload', 'gam_cuda__pinned_alloc',
                          'gam_cuda__workspace_release', 'gam_cuda__staging_release', 'gam_cuda__info',
                          'gam_cuda_softmax', 'gam_cuda_conv2d_forward', 'gam_philox4x32_10', 'gam_cudnn_set'} do
      assert.truthy(out:find(' ' .. sym .. '\n', 1, true), 'libgam does not define ' .. sym)
    end
  end)

  it('gam.cuda_info() reports the stack, or why not', function()
    local info, why = gam.cuda_info()
    if not gam.cuda_built() then
      assert.is_nil(info)
      assert.truthy(why:find('not available in this build', 1, true), why)
      return
    end
    assert.are.equal('table', type(info))
    assert.truthy(info.runtime:match('^%d+%.%d$'), info.runtime) -- the runtime linked in knows itself
    assert.truthy(info.cudnn:match('^%d+%.%d+%.%d+$'), info.cudnn)
    assert.truthy(info.cudnn_compiled:match('^%d+%.%d+%.%d+$'), info.cudnn_compiled)
    if gpu_present() then
      assert.is_true(info.devices >= 1)
      assert.is_true(#info.name > 0 and info.memory_bytes > 0)
    else
      assert.are.equal(0, info.devices)
      assert.are.equal('', info.name)
    end
  end)
end)

describe('devices', function()
  it('an unknown device is a clear error', function()
    local e = errmsg(function() return gam.ones(2):to('tpu') end)
    assert.truthy(e:find('tpu', 1, true), e)
    e = errmsg(function() return gam.ones({2}, {device = 'gpu'}) end)
    assert.truthy(e:find("unknown device 'gpu'", 1, true), e)
  end)
end)
