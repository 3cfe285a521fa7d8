-- gam.F — functional forms of the ops (PyTorch's torch.nn.functional).
local ffi = require 'ffi'
local C = require 'gam.lib'
local tensor = require 'gam.tensor'
local T, op, num_arg = tensor.T, tensor.op, tensor.num_arg
local Tensor = tensor.Tensor

local F = {}

function F.relu(x) return Tensor.relu(x) end
function F.softmax(x, d) return Tensor.softmax(x, d) end
function F.log_softmax(x, d) return Tensor.log_softmax(x, d) end
function F.matmul(a, b) return Tensor.matmul(a, b) end

--- F.linear(x[n,in], w[out,in], b[out] or nil) -> [n,out]
function F.linear(x, w, b)
  return op(C.gam_linear, T(x, 'linear', 'input'), T(w, 'linear', 'weight'),
            b ~= nil and T(b, 'linear', 'bias') or nil)
end

--- F.cross_entropy(logits[n,k], target[n] int64 0-based) -> per-sample loss [n]
function F.cross_entropy(logits, target)
  return op(C.gam_cross_entropy, T(logits, 'cross_entropy', 'logits'), T(target, 'cross_entropy', 'target'))
end

--- F.smooth_cross_entropy(logits, target, s): KL to (1-s on the target, s/(K-1) elsewhere), per sample
function F.smooth_cross_entropy(logits, target, smoothing)
  smoothing = smoothing or 0.1
  num_arg(smoothing, 'smooth_cross_entropy', 'smoothing')
  return op(C.gam_smooth_cross_entropy, T(logits, 'smooth_cross_entropy', 'logits'),
            T(target, 'smooth_cross_entropy', 'target'), smoothing)
end

return F
