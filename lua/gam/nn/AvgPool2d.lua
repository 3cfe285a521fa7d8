-- nn.AvgPool2d(kernel_size, {stride = kernel_size, padding = 0, ceil_mode = false, count_include_pad = true})
--   x [n, c, h, w] -> [n, c, h', w'], each output the mean of its window
-- (with count_include_pad, padded zeros count in the divisor, as PyTorch).
local F = require 'gam.functional'
local Module = require 'gam.nn.Module'
local args = require 'gam.argcheck'

local AvgPool2d = Module:extend('AvgPool2d')

function AvgPool2d:__init(kernel_size, o)
  o = args.opts(o, 'AvgPool2d', {'stride', 'padding', 'ceil_mode', 'count_include_pad'})
  args.pair(kernel_size, 'AvgPool2d', 'kernel_size', 1)
  self.kernel_size = kernel_size
  self.stride = o.stride or kernel_size
  args.pair(self.stride, 'AvgPool2d', 'stride', 1)
  self.padding = o.padding or 0
  args.pair(self.padding, 'AvgPool2d', 'padding', 0)
  self.ceil_mode = args.bool(o.ceil_mode, false, 'AvgPool2d', 'ceil_mode')
  self.count_include_pad = args.bool(o.count_include_pad, true, 'AvgPool2d', 'count_include_pad')
end

function AvgPool2d:forward(x)
  return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)
end

function AvgPool2d:extra_repr()
  local pv = Module.pyval
  return string.format('kernel_size=%s, stride=%s, padding=%s', pv(self.kernel_size), pv(self.stride),
                       pv(self.padding))
end

return AvgPool2d
