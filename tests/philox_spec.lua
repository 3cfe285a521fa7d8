-- gam_philox4x32_10: the counter-based generator of the cuda dropout masks
-- (kernels/random.cu; engine/random.c has the host twin tested here against
-- the known-answer vectors of Random123, the generator's reference code).
-- tests/cuda/layers_cuda.lua checks that the device's masks follow it.
local ffi = require 'ffi'
local C = require 'gam.lib'

local function philox(ctr, key)
  local c, k, o = ffi.new('uint32_t[4]', ctr), ffi.new('uint32_t[2]', key), ffi.new('uint32_t[4]')
  C.gam_philox4x32_10(c, k, o)
  return {string.format('%08x', o[0]), string.format('%08x', o[1]), string.format('%08x', o[2]),
          string.format('%08x', o[3])}
end

describe('Philox4x32-10 on the host', function()
  it('gives the known-answer vectors', function()
    assert.are.same({'6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8'}, philox({0, 0, 0, 0}, {0, 0}))
    assert.are.same({'408f276d', '41c83b0e', 'a20bc7c6', '6d5451fd'},
                    philox({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}))
    assert.are.same({'d16cfe09', '94fdcceb', '5001e420', '24126ea1'},
                    philox({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}))
  end)

  it('outputs look uniform: the top bit of 4000 words is set about half the time', function()
    local set = 0
    for q = 0, 999 do
      local c, k, o = ffi.new('uint32_t[4]', {q, 0, 0, 0}), ffi.new('uint32_t[2]', {7, 0}), ffi.new('uint32_t[4]')
      C.gam_philox4x32_10(c, k, o)
      for j = 0, 3 do if o[j] >= 0x80000000 then set = set + 1 end end
    end
    assert(set > 1850 and set < 2150, 'top bit set ' .. set .. ' times of 4000')  -- about 4.7 sigma
  end)
end)
