-- Wide ResNet with pre-activation units, as the SAM seed (on which GAM's
-- code builds) defines it.
--
-- filters {16, 16 k, 32 k, 64 k} for widen factor k; each of the three
-- stages is a DownsampleUnit followed by (depth - 4) / 6 BasicUnits. (The
-- seed's stages thus hold one unit more than Zagoruyko's WRN-28-10, hence
-- 46.2M parameters instead of 36.5M; we keep the seed's network.)
--   BasicUnit:      x + [BN ReLU conv3x3 BN ReLU Dropout conv3x3](x)
--   DownsampleUnit: y = BN ReLU (x);  [conv3x3(stride) BN ReLU Dropout conv3x3](y) + conv1x1(stride)(y)
--   network:        conv3x3(in -> 16), stages (stride 1, 2, 2), BN, ReLU, 8x8 average pool, flatten, linear
-- Initialisation as the seed: conv weights kaiming_normal_(fan_in, relu),
-- BN weight 1 bias 0, linear weight and bias 0. Names follow the seed's
-- OrderedDicts: f.0_convolution.weight, f.1_block.block.0.norm_act.0_normalization.weight, ...
--
--   x [n, in_channels, 32, 32] -> logits [n, num_classes]
local nn = require 'gam.nn'
local check_opts = require('gam.models.resnet').check_opts

local M = {}

local function conv3(cin, cout, stride)
  return nn.Conv2d(cin, cout, 3, {stride = stride, padding = 1, bias = false})
end

local BasicUnit = nn.Module:extend('BasicUnit')
M.BasicUnit = BasicUnit

function BasicUnit:__init(c, dropout)
  self:add_module('block', nn.Sequential{
    {'0_normalization', nn.BatchNorm2d(c)},
    {'1_activation', nn.ReLU()},
    {'2_convolution', conv3(c, c, 1)},
    {'3_normalization', nn.BatchNorm2d(c)},
    {'4_activation', nn.ReLU()},
    {'5_dropout', nn.Dropout(dropout)},
    {'6_convolution', conv3(c, c, 1)},
  })
end

function BasicUnit:forward(x) return x + self.block(x) end

local DownsampleUnit = nn.Module:extend('DownsampleUnit')
M.DownsampleUnit = DownsampleUnit

function DownsampleUnit:__init(cin, cout, stride, dropout)
  self:add_module('norm_act', nn.Sequential{
    {'0_normalization', nn.BatchNorm2d(cin)},
    {'1_activation', nn.ReLU()},
  })
  self:add_module('block', nn.Sequential{
    {'0_convolution', conv3(cin, cout, stride)},
    {'1_normalization', nn.BatchNorm2d(cout)},
    {'2_activation', nn.ReLU()},
    {'3_dropout', nn.Dropout(dropout)},
    {'4_convolution', conv3(cout, cout, 1)},
  })
  self:add_module('downsample', nn.Conv2d(cin, cout, 1, {stride = stride, padding = 0, bias = false}))
end

function DownsampleUnit:forward(x)
  x = self.norm_act(x)
  return self.block(x) + self.downsample(x)
end

local Block = nn.Module:extend('Block')
M.Block = Block

function Block:__init(cin, cout, stride, depth, dropout)
  local seq = nn.Sequential{DownsampleUnit(cin, cout, stride, dropout)}
  for _ = 1, depth do seq:add(BasicUnit(cout, dropout)) end
  self:add_module('block', seq)
end

function Block:forward(x) return self.block(x) end

local WideResNet = nn.Module:extend('WideResNet')
M.WideResNet = WideResNet

--- WideResNet{depth = 28, widen_factor = 10, dropout = 0, num_classes = 10, in_channels = 3}
function WideResNet:__init(o)
  local depth, k, dropout = o.depth or 28, o.widen_factor or 10, o.dropout or 0
  if type(depth) ~= 'number' or depth < 10 or (depth - 4) % 6 ~= 0 then
    error('wrn: depth must be 6 n + 4 (n >= 1), got ' .. tostring(depth), 3)
  end
  if type(k) ~= 'number' or k ~= math.floor(k) or k < 1 then
    error('wrn: widen_factor must be a positive integer, got ' .. tostring(k), 3)
  end
  if type(dropout) ~= 'number' or dropout < 0 or dropout > 1 then
    error('wrn: dropout must be a probability in [0, 1], got ' .. tostring(dropout), 3)
  end
  local f = {16, 16 * k, 32 * k, 64 * k}
  local n = (depth - 4) / 6
  self.depth, self.widen_factor, self.dropout = depth, k, dropout
  self:add_module('f', nn.Sequential{
    {'0_convolution', conv3(o.in_channels or 3, f[1], 1)},
    {'1_block', Block(f[1], f[2], 1, n, dropout)},
    {'2_block', Block(f[2], f[3], 2, n, dropout)},
    {'3_block', Block(f[3], f[4], 2, n, dropout)},
    {'4_normalization', nn.BatchNorm2d(f[4])},
    {'5_activation', nn.ReLU()},
    {'6_pooling', nn.AvgPool2d(8)},
    {'7_flattening', nn.Flatten()},
    {'8_classification', nn.Linear(f[4], o.num_classes or 10)},
  })
  for _, m in ipairs(self:modules()) do
    if m:isinstance(nn.Conv2d) then
      nn.init.kaiming_normal_(m.weight, {mode = 'fan_in', nonlinearity = 'relu'})
      if m.bias then m.bias:fill_(0) end
    elseif m:isinstance(nn.Linear) then
      m.weight:fill_(0)
      if m.bias then m.bias:fill_(0) end
    end
  end
end

function WideResNet:forward(x) return self.f(x) end

--- models.wrn{depth = 28, widen_factor = 10, dropout = 0, num_classes = 10, in_channels = 3}
function M.wrn(o)
  if o ~= nil and type(o) ~= 'table' then error('wrn: options must be a table', 2) end
  o = o or {}
  local base = {}
  for k, v in pairs(o) do
    if k ~= 'depth' and k ~= 'widen_factor' and k ~= 'dropout' then base[k] = v end
  end
  check_opts(base, 'wrn')
  return WideResNet(o)
end

--- models.wrn28_10{num_classes =, in_channels =, dropout = 0}
function M.wrn28_10(o)
  if o ~= nil and type(o) ~= 'table' then error('wrn28_10: options must be a table', 2) end
  o = o or {}
  local base = {num_classes = o.num_classes, in_channels = o.in_channels}
  for k in pairs(o) do
    if k ~= 'num_classes' and k ~= 'in_channels' and k ~= 'dropout' then
      error(string.format("wrn28_10: unknown option '%s' (known: num_classes, in_channels, dropout)", tostring(k)), 2)
    end
  end
  check_opts(base, 'wrn28_10')
  return WideResNet{depth = 28, widen_factor = 10, dropout = o.dropout or 0, num_classes = o.num_classes,
                    in_channels = o.in_channels}
end

return M
