-- gam.cudnn: the convolution algorithm flags (kept by the engine in every
-- build; they steer kernels/conv.cu, whose choices tests/cuda/layers_cuda.lua
-- checks on a GPU).
local gam = require 'gam'
local ffi = require 'ffi'
local C = require 'gam.lib'
local errmsg = dofile((debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.') .. '/helpers.lua').errmsg

describe('gam.cudnn', function()
  after_each(function()
    gam.cudnn.benchmark = false
    gam.cudnn.deterministic = true
  end)

  it('defaults to deterministic algorithms without benchmarking', function()
    assert.is_false(gam.cudnn.benchmark)
    assert.is_true(gam.cudnn.deterministic)
  end)

  it('keeps each flag in the engine, independently', function()
    gam.cudnn.benchmark = true
    assert.is_true(gam.cudnn.benchmark)
    assert.is_true(gam.cudnn.deterministic)
    gam.cudnn.deterministic = false
    assert.is_true(gam.cudnn.benchmark)
    assert.is_false(gam.cudnn.deterministic)
    local b, d = ffi.new('int[1]'), ffi.new('int[1]')
    C.gam_cudnn_get(b, d)
    assert.are.equal(1, b[0])
    assert.are.equal(0, d[0])
    gam.cudnn.benchmark = false
    assert.is_false(gam.cudnn.benchmark)
    assert.is_false(gam.cudnn.deterministic)
  end)

  it('refuses values that are not booleans, naming the flag', function()
    local msg = errmsg(function() gam.cudnn.benchmark = 1 end)
    assert.truthy(msg:find('gam.cudnn.benchmark must be a boolean', 1, true), msg)
    msg = errmsg(function() gam.cudnn.deterministic = 'yes' end)
    assert.truthy(msg:find('gam.cudnn.deterministic must be a boolean', 1, true), msg)
    assert.is_false(gam.cudnn.benchmark)
    assert.is_true(gam.cudnn.deterministic)
  end)

  it('refuses unknown fields', function()
    local msg = errmsg(function() gam.cudnn.fast = true end)
    assert.truthy(msg:find('gam.cudnn has no field fast', 1, true), msg)
    msg = errmsg(function() return gam.cudnn.enabled end)
    assert.truthy(msg:find('gam.cudnn has no field enabled', 1, true), msg)
  end)

  it('checks the C arguments', function()
    assert.are.equal(-1, C.gam_cudnn_set(2, -1))
    assert.truthy(ffi.string(C.gam_last_error()):find('benchmark must be true or false, got 2', 1, true))
    assert.are.equal(-1, C.gam_cudnn_set(-1, -2))
    assert.truthy(ffi.string(C.gam_last_error()):find('deterministic must be true or false', 1, true))
    assert.are.equal(0, C.gam_cudnn_set(-1, -1))
    assert.is_false(gam.cudnn.benchmark)
    assert.is_true(gam.cudnn.deterministic)
  end)
end)
