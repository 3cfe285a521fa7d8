-- gam.log.protobuf — the few protocol-buffer encodings TensorBoard's event
-- files need, written by hand (no schema compiler): each function returns the
-- bytes of one field, and a message is the concatenation of its fields.
--
--   local pb = require 'gam.log.protobuf'
--   local value = pb.string(1, 'train/loss') .. pb.float(2, 0.25)   -- Summary.Value
--   local summary = pb.message(1, value)                             -- Summary{value = {...}}
--
-- Wire types: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32. Numbers are
-- written little-endian, as the wire format and x86/ARM hosts have them.
local ffi = require 'ffi'

local M = {}

local f64, f32 = ffi.new('double[1]'), ffi.new('float[1]')

--- pb.varint(n): the base-128 varint of a non-negative integer (up to 2^53)
function M.varint(n)
  assert(n >= 0 and n == math.floor(n), 'protobuf: varint needs a non-negative integer')
  local out = {}
  repeat
    local low = n % 128
    n = (n - low) / 128
    out[#out + 1] = string.char(n > 0 and low + 128 or low)
  until n == 0
  return table.concat(out)
end

local function key(field, wire) return M.varint(field * 8 + wire) end

--- pb.uint(field, n): an int64/uint64/enum field (varint)
function M.uint(field, n) return key(field, 0) .. M.varint(n) end

--- pb.double(field, x): a double field (fixed64)
function M.double(field, x)
  f64[0] = x
  return key(field, 1) .. ffi.string(f64, 8)
end

--- pb.float(field, x): a float field (fixed32; x rounded to float32)
function M.float(field, x)
  f32[0] = x
  return key(field, 5) .. ffi.string(f32, 4)
end

--- pb.string(field, s): a string, bytes or embedded-message field
function M.string(field, s) return key(field, 2) .. M.varint(#s) .. s end
M.message = M.string

--- pb.packed_doubles(field, list): a packed repeated double field
function M.packed_doubles(field, list)
  local buf = ffi.new('double[?]', math.max(#list, 1))
  for i, x in ipairs(list) do buf[i - 1] = x end
  return M.string(field, ffi.string(buf, 8 * #list))
end

return M
