-- cnn_small: a small CNN for 28x28 grey images (Fashion-MNIST), an nn.Sequential:
--   conv3x3(in -> 32, padding 1) BN ReLU maxpool2   [n, 32, 14, 14]
--   conv3x3(32 -> 64, padding 1) BN ReLU maxpool2   [n, 64, 7, 7]
--   flatten [n, 3136] -> Linear(3136, 128) ReLU -> Linear(128, num_classes)
-- PyTorch's default initialisation; names 0.weight, 1.running_mean, ..., 11.bias.
local nn = require 'gam.nn'
local check_opts = require('gam.models.resnet').check_opts

local M = {}

--- models.cnn_small{num_classes = 10, in_channels = 1}
function M.cnn_small(o)
  o = check_opts(o, 'cnn_small')
  local num_classes, in_channels = o.num_classes or 10, o.in_channels or 1
  return nn.Sequential{
    nn.Conv2d(in_channels, 32, 3, {padding = 1}), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(32, 64, 3, {padding = 1}), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, num_classes),
  }
end

return M
