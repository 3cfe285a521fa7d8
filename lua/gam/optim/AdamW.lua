-- optim.AdamW — Adam with decoupled weight decay (PyTorch's AdamW): before
-- Adam's update (without L2 on the gradient), θ = θ (1 − lr weight_decay).
--
--   local opt = optim.AdamW{params = model:parameters(), lr = 1e-3, weight_decay = 1e-2}
local Adam = require 'gam.optim.Adam'
local Optimizer = require 'gam.optim.Optimizer'

local AdamW = Optimizer.extend('AdamW')
for k, v in pairs(Adam) do
  if AdamW[k] == nil and k ~= '__typename' and k ~= '__index' then AdamW[k] = v end
end
AdamW.decoupled = true
AdamW.default_weight_decay = 1e-2

function AdamW.new(opts) return Adam.construct(AdamW, 'optim.AdamW', opts) end
getmetatable(AdamW).__call = function(_, opts) return AdamW.new(opts) end

return AdamW
