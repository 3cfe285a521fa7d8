-- gam.models — the networks of the GAM paper, each a function of
-- {num_classes =, in_channels =} returning an nn module:
--   resnet18_c, resnet34_c, resnet50_c, resnet101_c, resnet152_c   (CIFAR ResNets, 32x32 input)
--   pyramidnet110_c, pyramidnet272_c                               (bottleneck PyramidNets, 32x32)
--   wrn28_10 (also takes dropout), wrn{depth =, widen_factor =, dropout =}  (Wide ResNets, 32x32)
--   cnn_small                                                      (28x28 grey input, in_channels 1)
--
--   local model = gam.models.resnet18_c{num_classes = 10}
--   local model = gam.models.get('wrn28_10', {num_classes = 100})
local models = {}

local sources = {
  {'gam.models.resnet', {'resnet18_c', 'resnet34_c', 'resnet50_c', 'resnet101_c', 'resnet152_c'}},
  {'gam.models.pyramidnet', {'pyramidnet110_c', 'pyramidnet272_c'}},
  {'gam.models.wrn', {'wrn28_10', 'wrn'}},
  {'gam.models.cnn_small', {'cnn_small'}},
}

--- models.names: every model name, in a fixed order
models.names = {}
for _, src in ipairs(sources) do
  local m = require(src[1])
  for _, name in ipairs(src[2]) do
    models[name] = m[name]
    models.names[#models.names + 1] = name
  end
end

--- models.get(name, opts): the model of that name
function models.get(name, opts)
  local f = type(name) == 'string' and name ~= 'get' and name ~= 'names' and models[name]
  if not f then
    error(string.format("models.get: unknown model '%s' (known: %s)", tostring(name),
                        table.concat(models.names, ', ')), 2)
  end
  return f(opts)
end

return models
