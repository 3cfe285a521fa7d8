-- PyramidNet for CIFAR with bottleneck blocks, as the GAM seed defines it
-- (Han et al., "Deep Pyramidal Residual Networks").
--
-- n = (depth - 2) / 9 blocks per stage, three stages. The block width grows
-- additively by alpha / (3 n) per block from 16, rounded half to even (as
-- Python's round) to give each block's `planes`; a block outputs 4 planes.
--   stem:  conv3x3(in -> 16) -> BN                       (no ReLU, as the seed)
--   block: BN -> conv1x1 -> BN -> ReLU -> conv3x3(stride) -> BN -> ReLU -> conv1x1(x4) -> BN
--          + shortcut: x, 2x2 average pool (ceil mode) when the stage downsamples,
--            with zero channels appended (cat along dim 2) up to the block's width
--   head:  BN -> ReLU -> 8x8 average pool -> flatten -> linear
-- Initialisation as the seed: conv weights N(0, sqrt(2 / (kh kw out))), BN
-- weight 1 bias 0, linear PyTorch's default.
--
--   pyramidnet110_c: depth 110, alpha 270;  pyramidnet272_c: depth 272, alpha 200
--   x [n, in_channels, 32, 32] -> logits [n, num_classes]
local tensor = require 'gam.tensor'
local nn = require 'gam.nn'
local check_opts = require('gam.models.resnet').check_opts

local M = {}

-- Python 3's round(): halves go to the even neighbour
local function round_half_even(x)
  local f = math.floor(x)
  local d = x - f
  if d > 0.5 then return f + 1 end
  if d < 0.5 then return f end
  return f % 2 == 0 and f or f + 1
end
M.round_half_even = round_half_even

local Bottleneck = nn.Module:extend('PyramidBottleneck')
Bottleneck.outchannel_ratio = 4
M.Bottleneck = Bottleneck

--- Bottleneck(cin, planes, stride, downsample or nil): output 4 * planes channels
function Bottleneck:__init(cin, planes, stride, downsample)
  local function conv(a, b, k, s, p) return nn.Conv2d(a, b, k, {stride = s, padding = p, bias = false}) end
  self:add_module('bn1', nn.BatchNorm2d(cin))
  self:add_module('conv1', conv(cin, planes, 1, 1, 0))
  self:add_module('bn2', nn.BatchNorm2d(planes))
  self:add_module('conv2', conv(planes, planes, 3, stride, 1))
  self:add_module('bn3', nn.BatchNorm2d(planes))
  self:add_module('conv3', conv(planes, planes * 4, 1, 1, 0))
  self:add_module('bn4', nn.BatchNorm2d(planes * 4))
  self:add_module('relu', nn.ReLU())
  if downsample then self:add_module('downsample', downsample) end
end

function Bottleneck:forward(x)
  local out = self.conv1(self.bn1(x))
  out = self.conv2(self.relu(self.bn2(out)))
  out = self.conv3(self.relu(self.bn3(out)))
  out = self.bn4(out)
  local shortcut = self.downsample and self.downsample(x) or x
  local extra = out:size(2) - shortcut:size(2)
  if extra > 0 then
    -- zero channels [n, extra, h, w] appended to the shortcut
    local zeros = tensor.zeros({shortcut:size(1), extra, shortcut:size(3), shortcut:size(4)},
                               {device = shortcut:device()})
    shortcut = tensor.cat({shortcut, zeros}, 2)
  end
  return out + shortcut
end

local PyramidNet = nn.Module:extend('PyramidNet')
M.PyramidNet = PyramidNet

--- PyramidNet{depth =, alpha =, num_classes = 10, in_channels = 3}
function PyramidNet:__init(o)
  if type(o) ~= 'table' then
    error('PyramidNet: expected options {depth =, alpha =, num_classes =, in_channels =}', 3)
  end
  local depth, alpha = o.depth, o.alpha
  if type(depth) ~= 'number' or depth < 11 or (depth - 2) % 9 ~= 0 then
    error('PyramidNet: depth must be 9 n + 2 (n >= 1) for bottleneck blocks, got ' .. tostring(depth), 3)
  end
  if type(alpha) ~= 'number' or alpha < 0 then
    error('PyramidNet: alpha must be a number >= 0, got ' .. tostring(alpha), 3)
  end
  local n = (depth - 2) / 9
  local num_classes, in_channels = o.num_classes or 10, o.in_channels or 3
  self.depth, self.alpha = depth, alpha
  self.addrate = alpha / (3 * n)
  self.input_dim = 16
  self.dim = 16
  self:add_module('conv1', nn.Conv2d(in_channels, 16, 3, {stride = 1, padding = 1, bias = false}))
  self:add_module('bn1', nn.BatchNorm2d(16))
  self:add_module('layer1', self:make_stage(n, 1))
  self:add_module('layer2', self:make_stage(n, 2))
  self:add_module('layer3', self:make_stage(n, 2))
  self:add_module('bn_final', nn.BatchNorm2d(self.input_dim))
  self:add_module('relu_final', nn.ReLU())
  self:add_module('avgpool', nn.AvgPool2d(8))
  self:add_module('fc', nn.Linear(self.input_dim, num_classes))
  for _, m in ipairs(self:modules()) do
    if m:isinstance(nn.Conv2d) then
      local k = m.kernel_size
      nn.init.normal_(m.weight, 0, math.sqrt(2 / (k[1] * k[2] * m.out_channels)))
    end
  end
end

-- one stage of n blocks; the first has the stride (and the pooled shortcut)
function PyramidNet:make_stage(n, stride)
  local stage = nn.Sequential()
  local down = stride ~= 1 and nn.AvgPool2d({2, 2}, {stride = {2, 2}, ceil_mode = true}) or nil
  self.dim = self.dim + self.addrate
  stage:add(Bottleneck(self.input_dim, round_half_even(self.dim), stride, down))
  for _ = 2, n do
    local next_dim = self.dim + self.addrate
    stage:add(Bottleneck(round_half_even(self.dim) * 4, round_half_even(next_dim), 1, nil))
    self.dim = next_dim
  end
  self.input_dim = round_half_even(self.dim) * 4
  return stage
end

function PyramidNet:forward(x)
  local out = self.bn1(self.conv1(x))
  out = self.layer3(self.layer2(self.layer1(out)))
  out = self.avgpool(self.relu_final(self.bn_final(out)))
  return self.fc(out:reshape(out:size(1), -1))
end

local function make(name, depth, alpha)
  return function(o)
    o = check_opts(o, name)
    return PyramidNet{depth = depth, alpha = alpha, num_classes = o.num_classes, in_channels = o.in_channels}
  end
end
M.pyramidnet110_c = make('pyramidnet110_c', 110, 270)
M.pyramidnet272_c = make('pyramidnet272_c', 272, 200)

return M
