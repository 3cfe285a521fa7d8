-- gam — the gamlua package: tensors with autograd over the C engine, nn
-- modules, models, optimisers (SGD, Adam, AdamW, SAM, ASAM, GSAM, GAM), data.
--
--   local gam = require 'gam'
--   local x = gam.randn({4, 3})
--   local loss = (x * 2):sum()
local tensor = require 'gam.tensor'

local gam = {}
for _, k in ipairs {'tensor', 'zeros', 'ones', 'full', 'empty', 'rand', 'randn', 'randint', 'randperm',
                    'arange', 'cat', 'manual_seed', 'rng_state', 'set_rng_state', 'from_buffer',
                    'memory', 'empty_cache', 'cuda_built', 'cuda_available', 'cuda_info', 'cuda_host_waits',
                    'synchronize', 'set_num_threads', 'get_num_threads', 'scope', 'keep',
                    'release', 'no_grad', 'enable_grad', 'is_grad_enabled', 'is_tensor', 'Tensor'} do
  gam[k] = tensor[k]
end
gam.version = _GAMLUA and _GAMLUA.version or '0.1.0'
gam.F = require 'gam.functional'
gam.clock = require('gam.sys').clock     -- seconds (monotonic, or 'cpu')
gam.isatty = require('gam.sys').isatty
gam.mkdir_p = require('gam.sys').mkdir_p
gam.save = function(...) return require('gam.checkpoint').save(...) end
gam.load = function(...) return require('gam.checkpoint').load(...) end

-- submodules load on first use: gam.nn, gam.optim, gam.models, gam.data, gam.log, gam.flatness, gam.dist
local lazy = {nn = 'gam.nn', optim = 'gam.optim', models = 'gam.models', data = 'gam.data', log = 'gam.log',
              checkpoint = 'gam.checkpoint', flatness = 'gam.flatness', dist = 'gam.dist',
              cudnn = 'gam.cudnn'}
-- (__lazy names them for the REPL's Tab completion)
setmetatable(gam, {__lazy = lazy, __index = function(t, k)
  local name = lazy[k]
  if name then
    local m = require(name)
    rawset(t, k, m)
    return m
  end
end})

return gam
