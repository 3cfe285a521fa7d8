-- nn.SyncBatchNorm(num_features, {eps, momentum, affine}) — BatchNorm2d whose
-- training statistics are those of the global batch (every rank's batch
-- together, gam.dist), so that the forward equals one process's on the
-- concatenated batch. With one rank (or in evaluation) it is BatchNorm2d.
--
-- Training, per channel c, M = Σ_ranks n·h·w (two all-reduces, two-pass
-- variance like the single-process kernel):
--   mean = Σ_ranks Σ x / M
--   var  = Σ_ranks Σ (x − mean)² / M                (biased: normalises)
--   y    = (x − mean) / √(var + eps) · weight + bias
--   running_mean ← (1−m) running_mean + m mean;  running_var ← (1−m) running_var + m var·M/(M−1)
-- The all-reduces are differentiable (dist.all_reduce_grad), so the backward
-- is the single-process backward too.
--   nn.SyncBatchNorm.convert(model): every BatchNorm2d of model becomes a
--   SyncBatchNorm, keeping its parameters and buffers (returns model).
local tensor = require 'gam.tensor'
local BatchNorm2d = require 'gam.nn.BatchNorm2d'

local SyncBatchNorm = BatchNorm2d:extend('SyncBatchNorm')

function SyncBatchNorm:forward(x)
  local dist = require 'gam.dist'
  if not self.training or dist.size() == 1 then return BatchNorm2d.forward(self, x) end
  local c = self.num_features
  if type(x) ~= 'cdata' or x:dim() ~= 4 or x:size(2) ~= c then
    return BatchNorm2d.forward(self, x)   -- its argument errors
  end
  local count = dist.sum_numbers({x:size(1) * x:size(3) * x:size(4)})[1]
  local function channel_sum(t) return t:sum(1, true):sum(3, true):sum(4, true) end   -- [1,c,1,1]
  local mean = dist.all_reduce_grad(channel_sum(x)) * (1 / count)
  local centred = x - mean
  local var = dist.all_reduce_grad(channel_sum(centred * centred)) * (1 / count)
  local y = centred * (var + self.eps):pow(-0.5)
  if self.affine then y = y * self.weight:view({1, c, 1, 1}) + self.bias:view({1, c, 1, 1}) end
  local m = self.momentum
  if m ~= 0 then
    tensor.no_grad(function()
      local rm, rv = self.running_mean, self.running_var
      rm:copy_(rm * (1 - m) + mean:view({c}) * m)
      rv:copy_(rv * (1 - m) + var:view({c}) * (m * count / math.max(count - 1, 1)))
    end)
  end
  return y
end

--- SyncBatchNorm.convert(model): BatchNorm2d modules become SyncBatchNorm in place
function SyncBatchNorm.convert(model)
  local mods = model.modules and model:modules() or {model}
  for _, m in ipairs(mods) do
    if getmetatable(m) == BatchNorm2d then setmetatable(m, SyncBatchNorm) end
  end
  return model
end

function SyncBatchNorm:extra_repr() return BatchNorm2d.extra_repr(self) end

return SyncBatchNorm
