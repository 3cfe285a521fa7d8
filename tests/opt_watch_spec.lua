-- gam_opt_watch_targets: inside a watched optimiser step, cross-entropy's
-- target check does not wait: a target outside the classes is recorded in the
-- step's scalars block (flag, value, sample, classes) and reported at the
-- step's one read (lua/gam/optim/Sharpness.lua does this on a device; its GPU
-- test is in tests/cuda/optim_cuda.lua). Here the cpu entry of the same path,
-- driven by hand on a cpu block.
local ffi = require 'ffi'
local gam = require 'gam'
local C = require 'gam.lib'
local F = gam.F

local function block()
  local out = ffi.new('gam_tensor*[1]')
  assert.are.equal(0, C.gam_opt_scalars(out, C.GAM_CPU))
  return require('gam.tensor').wrap(out[0])
end

local function read(s)
  local h = ffi.new('double[?]', C.GAM_OPT_NSCALARS)
  assert.are.equal(0, C.gam_opt_read(s.t, h))
  return h
end

local function long(v) return gam.tensor(v, {dtype = 'int64'}) end

describe('gam_opt_watch_targets', function()
  after_each(function() C.gam_opt_watch_targets(nil) end)

  it('records the first bad target in the watched block instead of failing', function()
    local s = block()
    assert.are.equal(0, C.gam_opt_watch_targets(s.t))
    local logits = gam.randn({4, 5})
    local loss = F.cross_entropy(logits, long{1, 6, 0, -2})  -- no error now
    assert.are.same({4}, loss:shape())
    local h = read(s)
    assert.are.equal(C.GAM_OPT_CODE_TARGET, h[C.GAM_OPT_FLAG])
    assert.are.equal(6, h[C.GAM_OPT_BAD])
    assert.are.equal(1, h[C.GAM_OPT_POS])   -- 0-based sample
    assert.are.equal(5, h[C.GAM_OPT_HI])
    -- a later bad target leaves the first failure in place
    F.cross_entropy(logits, long{0, 0, 0, 9})
    assert.are.equal(6, read(s)[C.GAM_OPT_BAD])
  end)

  it('leaves the block alone when every target is in range, and an earlier flag wins', function()
    local s = block()
    assert.are.equal(0, C.gam_opt_watch_targets(s.t))
    F.cross_entropy(gam.randn({3, 4}), long{0, 3, 2})
    local h = read(s)
    for k = 0, C.GAM_OPT_NSCALARS - 1 do assert.are.equal(0, h[k]) end
    ffi.cast('double *', s.t.storage.data)[C.GAM_OPT_FLAG] = 9  -- an earlier failure of the step
    F.cross_entropy(gam.randn({3, 4}), long{0, 4, 2})
    assert.are.equal(9, read(s)[C.GAM_OPT_FLAG])
    assert.are.equal(0, read(s)[C.GAM_OPT_BAD])
  end)

  it('without a watched block (a plain forward) fails at once', function()
    local s = block()
    assert.are.equal(0, C.gam_opt_watch_targets(s.t))
    assert.are.equal(0, C.gam_opt_watch_targets(nil))
    local ok, err = pcall(F.cross_entropy, gam.randn({2, 5}), long{0, 9})
    assert.is_false(ok)
    assert.truthy(tostring(err):find('cross_entropy: target 9 of sample 2 is outside the classes [0, 5)', 1, true),
                  tostring(err))
    assert.are.equal(0, read(s)[C.GAM_OPT_FLAG])
  end)

  it('refuses what is not a scalars block', function()
    assert.are.equal(-1, C.gam_opt_watch_targets(gam.zeros({8}).t))
    assert.truthy(ffi.string(C.gam_last_error()):find('scalars block', 1, true))
    assert.are.equal(-1, C.gam_opt_watch_targets(gam.zeros({3}, {dtype = 'int64'}).t))
  end)
end)
