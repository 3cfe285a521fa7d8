-- gam.nn — layers and containers (torch.nn's contract; see nn/Module.lua).
--
--   local nn = require('gam').nn
--   local net = nn.Sequential{nn.Conv2d(1, 8, 3, {padding = 1}), nn.BatchNorm2d(8), nn.ReLU(),
--                             nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 14 * 14, 10)}
--   local y = net(x)                          -- callable
--   for _, e in ipairs(net:named_parameters()) do print(e.name, e.tensor:shape()) end
local nn = {}

for _, name in ipairs {'Module', 'Sequential', 'Linear', 'Conv2d', 'BatchNorm2d', 'ReLU', 'MaxPool2d',
                       'AvgPool2d', 'AdaptiveAvgPool2d', 'Flatten', 'Dropout', 'Identity', 'SyncBatchNorm'} do
  nn[name] = require('gam.nn.' .. name)
end
nn.init = require 'gam.nn.weight_init'

--- nn.is_module(v): true when v is a module instance
nn.is_module = nn.Module.is_module

return nn
