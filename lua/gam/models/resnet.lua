-- ResNets for CIFAR, as the GAM seed defines them (ResNet_c): a 3x3 stem
-- convolution to 64 channels with BN and ReLU, no max-pool, four stages of
-- BasicBlocks (18, 34) or Bottlenecks (50, 101, 152) at 64/128/256/512
-- planes, a 4x4 average pool, and a linear classifier. A block's shortcut is
-- a 1x1 convolution + BN when its stride or width changes, else the identity.
-- PyTorch's default initialisation throughout. Names match the seed:
-- conv1, bn1, layer1.0.conv1.weight, layer2.0.shortcut.0.weight, linear.bias.
--
--   x [n, in_channels, 32, 32] -> logits [n, num_classes]
local F = require 'gam.functional'
local nn = require 'gam.nn'

local M = {}

local function conv(cin, cout, k, stride, padding)
  return nn.Conv2d(cin, cout, k, {stride = stride, padding = padding, bias = false})
end

-- shortcut: empty Sequential (identity) or 1x1 conv with stride + BN
local function shortcut(cin, cout, stride)
  if stride ~= 1 or cin ~= cout then
    return nn.Sequential{conv(cin, cout, 1, stride, 0), nn.BatchNorm2d(cout)}
  end
  return nn.Sequential()
end

-- BasicBlock: relu(bn2(conv3x3(relu(bn1(conv3x3_s(x))))) + shortcut(x))
local BasicBlock = nn.Module:extend('BasicBlock')
BasicBlock.expansion = 1
M.BasicBlock = BasicBlock

function BasicBlock:__init(cin, planes, stride)
  self:add_module('conv1', conv(cin, planes, 3, stride, 1))
  self:add_module('bn1', nn.BatchNorm2d(planes))
  self:add_module('conv2', conv(planes, planes, 3, 1, 1))
  self:add_module('bn2', nn.BatchNorm2d(planes))
  self:add_module('shortcut', shortcut(cin, planes, stride))
end

function BasicBlock:forward(x)
  local out = F.relu(self.bn1(self.conv1(x)))
  out = self.bn2(self.conv2(out))
  return F.relu(out + self.shortcut(x))
end

-- Bottleneck: 1x1 (planes) -> 3x3 stride (planes) -> 1x1 (4 planes), BN after each, ReLU between
local Bottleneck = nn.Module:extend('Bottleneck')
Bottleneck.expansion = 4
M.Bottleneck = Bottleneck

function Bottleneck:__init(cin, planes, stride)
  self:add_module('conv1', conv(cin, planes, 1, 1, 0))
  self:add_module('bn1', nn.BatchNorm2d(planes))
  self:add_module('conv2', conv(planes, planes, 3, stride, 1))
  self:add_module('bn2', nn.BatchNorm2d(planes))
  self:add_module('conv3', conv(planes, planes * 4, 1, 1, 0))
  self:add_module('bn3', nn.BatchNorm2d(planes * 4))
  self:add_module('shortcut', shortcut(cin, planes * 4, stride))
end

function Bottleneck:forward(x)
  local out = F.relu(self.bn1(self.conv1(x)))
  out = F.relu(self.bn2(self.conv2(out)))
  out = self.bn3(self.conv3(out))
  return F.relu(out + self.shortcut(x))
end

local ResNet = nn.Module:extend('ResNet_c')
M.ResNet = ResNet

--- ResNet(block, {n1, n2, n3, n4}, {num_classes = 10, in_channels = 3})
function ResNet:__init(block, counts, o)
  o = o or {}
  local num_classes, in_channels = o.num_classes or 10, o.in_channels or 3
  self.cin = 64
  self:add_module('conv1', conv(in_channels, 64, 3, 1, 1))
  self:add_module('bn1', nn.BatchNorm2d(64))
  local planes = {64, 128, 256, 512}
  for i = 1, 4 do
    local layer = nn.Sequential()
    for j = 1, counts[i] do
      local stride = (j == 1 and i > 1) and 2 or 1
      layer:add(block(self.cin, planes[i], stride))
      self.cin = planes[i] * block.expansion
    end
    self:add_module('layer' .. i, layer)
  end
  self:add_module('linear', nn.Linear(512 * block.expansion, num_classes))
end

function ResNet:forward(x)
  local out = F.relu(self.bn1(self.conv1(x)))
  out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
  out = F.avg_pool2d(out, 4, 4, 0, false, true)
  return self.linear(out:reshape(out:size(1), -1))
end

local function check_opts(o, name)
  if o ~= nil and type(o) ~= 'table' then
    error(string.format('%s: options must be a table like {num_classes = 10, in_channels = 3}', name), 3)
  end
  o = o or {}
  for k in pairs(o) do
    if k ~= 'num_classes' and k ~= 'in_channels' then
      error(string.format("%s: unknown option '%s' (known: num_classes, in_channels)", name, tostring(k)), 3)
    end
  end
  for _, k in ipairs {'num_classes', 'in_channels'} do
    local v = o[k]
    if v ~= nil and (type(v) ~= 'number' or v ~= math.floor(v) or v < 1) then
      error(string.format('%s: %s must be a positive integer, got %s', name, k, tostring(v)), 3)
    end
  end
  return o
end
M.check_opts = check_opts

local specs = {
  resnet18_c = {BasicBlock, {2, 2, 2, 2}},
  resnet34_c = {BasicBlock, {3, 4, 6, 3}},
  resnet50_c = {Bottleneck, {3, 4, 6, 3}},
  resnet101_c = {Bottleneck, {3, 4, 23, 3}},
  resnet152_c = {Bottleneck, {3, 8, 36, 3}},
}
for name, spec in pairs(specs) do
  M[name] = function(o)
    return ResNet(spec[1], spec[2], check_opts(o, name))
  end
end

return M
