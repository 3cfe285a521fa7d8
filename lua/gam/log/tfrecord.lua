-- gam.log.tfrecord — the TFRecord framing of TensorBoard's event files:
--
--   uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)
--
-- all little-endian; masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8 mod 2^32,
-- CRC-32C being the Castagnoli CRC (reflected polynomial 0x82f63b78). A reader
-- checks both CRCs, so a record cut by a crash is detected and the records
-- before it stay readable.
local ffi = require 'ffi'
local bit = require 'bit'
local band, bxor, rshift, lshift, bor = bit.band, bit.bxor, bit.rshift, bit.lshift, bit.bor

local M = {}

local TABLE = ffi.new('uint32_t[256]')
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do
    if band(c, 1) ~= 0 then c = bxor(rshift(c, 1), 0x82f63b78) else c = rshift(c, 1) end
  end
  TABLE[i] = c
end

--- tfrecord.crc32c(s): the CRC-32C of the string s, as a number in [0, 2^32)
function M.crc32c(s)
  local p = ffi.cast('const uint8_t *', s)
  local c = 0xffffffff
  for i = 0, #s - 1 do
    c = bxor(TABLE[band(bxor(c, p[i]), 0xff)], rshift(c, 8))
  end
  c = bxor(c, 0xffffffff)
  return c < 0 and c + 2 ^ 32 or c
end

--- tfrecord.masked_crc(s): the masked CRC-32C that TFRecord stores
function M.masked_crc(s)
  local c = M.crc32c(s)
  local m = bor(rshift(c, 15), lshift(c, 17))
  m = (m < 0 and m + 2 ^ 32 or m) + 0xa282ead8
  return m % 2 ^ 32
end

local u32, u64 = ffi.new('uint32_t[1]'), ffi.new('uint64_t[1]')

--- tfrecord.frame(data): the bytes of one record holding data
function M.frame(data)
  u64[0] = #data
  local len = ffi.string(u64, 8)
  u32[0] = M.masked_crc(len)
  local head = len .. ffi.string(u32, 4)
  u32[0] = M.masked_crc(data)
  return head .. data .. ffi.string(u32, 4)
end

return M
