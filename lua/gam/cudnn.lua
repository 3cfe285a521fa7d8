-- gam.cudnn — cuDNN's convolution algorithm choice, as torch.backends.cudnn.
--
--   gam.cudnn.deterministic = true   -- the default: algorithms that give the same
--                                    -- bits on every run, no FFT or Winograd
--   gam.cudnn.benchmark = true       -- time the allowed algorithms on a shape's first
--                                    -- use (cudnnFind*) and keep the fastest
--
-- Both flags are booleans kept by the engine (gam_cudnn_set / gam_cudnn_get);
-- changing one forgets the algorithms chosen so far. Any build accepts them
-- (they only matter to cuda convolutions).
local ffi = require 'ffi'
local C = require 'gam.lib'

local index = {benchmark = 0, deterministic = 1}  -- name -> argument position

local cudnn = {}

local function get(name)
  local b, d = ffi.new('int[1]'), ffi.new('int[1]')
  C.gam_cudnn_get(b, d)
  return (name == 'benchmark' and b[0] or d[0]) ~= 0
end

local function set(name, value)
  if type(value) ~= 'boolean' then
    error(string.format('gam.cudnn.%s must be a boolean (true or false), got %s', name, type(value)), 3)
  end
  local v = value and 1 or 0
  local rc = index[name] == 0 and C.gam_cudnn_set(v, -1) or C.gam_cudnn_set(-1, v)
  if rc ~= 0 then error(ffi.string(C.gam_last_error()), 3) end
end

return setmetatable(cudnn, {
  __index = function(_, k)
    if index[k] == nil then error('gam.cudnn has no field ' .. tostring(k) .. ' (benchmark, deterministic)', 2) end
    return get(k)
  end,
  __newindex = function(_, k, v)
    if index[k] == nil then error('gam.cudnn has no field ' .. tostring(k) .. ' (benchmark, deterministic)', 2) end
    set(k, v)
  end,
})
