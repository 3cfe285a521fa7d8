-- nn.Identity(): y = x (a placeholder; constructor arguments are ignored, as in PyTorch).
local Module = require 'gam.nn.Module'

local Identity = Module:extend('Identity')

function Identity:forward(x) return x end

return Identity
