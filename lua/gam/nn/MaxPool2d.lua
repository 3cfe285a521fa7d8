-- nn.MaxPool2d(kernel_size, {stride = kernel_size, padding = 0, ceil_mode = false})
--   x [n, c, h, w] -> [n, c, h', w'], h' = floor or ceil((h + 2 p - k) / s) + 1
-- kernel_size, stride and padding are integers or tables {h, w}.
local F = require 'gam.functional'
local Module = require 'gam.nn.Module'
local args = require 'gam.argcheck'

local MaxPool2d = Module:extend('MaxPool2d')

function MaxPool2d:__init(kernel_size, o)
  o = args.opts(o, 'MaxPool2d', {'stride', 'padding', 'ceil_mode'})
  args.pair(kernel_size, 'MaxPool2d', 'kernel_size', 1)
  self.kernel_size = kernel_size
  self.stride = o.stride or kernel_size
  args.pair(self.stride, 'MaxPool2d', 'stride', 1)
  self.padding = o.padding or 0
  args.pair(self.padding, 'MaxPool2d', 'padding', 0)
  self.ceil_mode = args.bool(o.ceil_mode, false, 'MaxPool2d', 'ceil_mode')
end

function MaxPool2d:forward(x)
  return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode)
end

function MaxPool2d:extra_repr()
  local pv = Module.pyval
  return string.format('kernel_size=%s, stride=%s, padding=%s, dilation=1, ceil_mode=%s', pv(self.kernel_size),
                       pv(self.stride), pv(self.padding), pv(self.ceil_mode))
end

return MaxPool2d
