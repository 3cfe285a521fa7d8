-- nn.AdaptiveAvgPool2d(output_size): x [n, c, h, w] -> [n, c, oh, ow]; window
-- i spans [floor(i h / oh), ceil((i + 1) h / oh)) as in PyTorch. output_size
-- is an integer or a table {oh, ow}; 1 is global average pooling.
local F = require 'gam.functional'
local Module = require 'gam.nn.Module'
local args = require 'gam.argcheck'

local AdaptiveAvgPool2d = Module:extend('AdaptiveAvgPool2d')

function AdaptiveAvgPool2d:__init(output_size)
  args.pair(output_size, 'AdaptiveAvgPool2d', 'output_size', 1)
  self.output_size = output_size
end

function AdaptiveAvgPool2d:forward(x)
  return F.adaptive_avg_pool2d(x, self.output_size)
end

function AdaptiveAvgPool2d:extra_repr()
  return 'output_size=' .. Module.pyval(self.output_size)
end

return AdaptiveAvgPool2d
