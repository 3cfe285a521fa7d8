-- gam.F — functional forms of the ops (PyTorch's torch.nn.functional).
local C = require 'gam.lib'
local tensor = require 'gam.tensor'
local check = require 'gam.argcheck'
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

-- ---- layers: convolution, batch norm, pooling, dropout (NCHW float32) ------------
-- A size argument is a number n (meaning {n, n}) or a pair {h, w}.
local pair, bool_arg = check.size2, check.flag

--- F.conv2d(x[N,C,H,W], w[O,C,kh,kw], b[O] or nil, {stride=1, padding=0, dilation=1})
function F.conv2d(x, w, b, opts)
  if opts ~= nil and type(opts) ~= 'table' then
    check.raise('conv2d: options must be a table like {stride = 1, padding = 0, dilation = 1}')
  end
  opts = opts or {}
  if opts.groups ~= nil and opts.groups ~= 1 then
    check.raise('conv2d: groups other than 1 are not supported, got ' .. tostring(opts.groups))
  end
  local sh, sw = pair(opts.stride, 'conv2d', 'stride', 1, 1)
  local ph, pw = pair(opts.padding, 'conv2d', 'padding', 0, 0)
  local dh, dw = pair(opts.dilation, 'conv2d', 'dilation', 1, 1)
  return op(C.gam_conv2d, T(x, 'conv2d', 'input'), T(w, 'conv2d', 'weight'),
            b ~= nil and T(b, 'conv2d', 'bias') or nil, sh, sw, ph, pw, dh, dw)
end

--- F.set_conv_algorithm('direct' | 'winograd') -> the previous one. 'direct' (the
-- default) uses oneDNN's direct kernels, as PyTorch does; 'winograd' runs 3x3
-- stride-1 convolutions with 16+ channels through oneDNN's Winograd kernels:
-- faster, with relative errors around 1e-5 instead of 1e-7.
local CONV_ALGOS = {direct = 0, winograd = 1}
function F.set_conv_algorithm(name)
  local v = CONV_ALGOS[name]
  if not v then
    check.fail("set_conv_algorithm: expected 'direct' or 'winograd', got %s", tostring(name))
  end
  local prev = C.gam_conv2d_get_algorithm() == 1 and 'winograd' or 'direct'
  tensor.check(C.gam_conv2d_set_algorithm(v))
  return prev
end

--- F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)
-- Training normalises with the batch statistics and, when running stats are
-- given, updates them in place as PyTorch does (unbiased variance).
function F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)
  training = bool_arg(training, 'batch_norm', 'training', false)
  momentum = momentum == nil and 0.1 or num_arg(momentum, 'batch_norm', 'momentum')
  eps = eps == nil and 1e-5 or num_arg(eps, 'batch_norm', 'eps')
  local function opt(v, what) return v ~= nil and T(v, 'batch_norm', what) or nil end
  return op(C.gam_batch_norm, T(x, 'batch_norm', 'input'), opt(running_mean, 'running_mean'),
            opt(running_var, 'running_var'), opt(weight, 'weight'), opt(bias, 'bias'),
            training and 1 or 0, momentum, eps)
end

--- F.max_pool2d(x, kernel, stride (default kernel), padding (0), ceil_mode (false))
function F.max_pool2d(x, kernel, stride, padding, ceil_mode)
  local kh, kw = pair(kernel, 'max_pool2d', 'kernel size', nil, 1)
  local sh, sw = pair(stride, 'max_pool2d', 'stride', {kh, kw}, 1)
  local ph, pw = pair(padding, 'max_pool2d', 'padding', 0, 0)
  ceil_mode = bool_arg(ceil_mode, 'max_pool2d', 'ceil_mode', false)
  return op(C.gam_max_pool2d, T(x, 'max_pool2d', 'input'), kh, kw, sh, sw, ph, pw, ceil_mode and 1 or 0)
end

--- F.avg_pool2d(x, kernel, stride (kernel), padding (0), ceil_mode (false), count_include_pad (true))
function F.avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad)
  local kh, kw = pair(kernel, 'avg_pool2d', 'kernel size', nil, 1)
  local sh, sw = pair(stride, 'avg_pool2d', 'stride', {kh, kw}, 1)
  local ph, pw = pair(padding, 'avg_pool2d', 'padding', 0, 0)
  ceil_mode = bool_arg(ceil_mode, 'avg_pool2d', 'ceil_mode', false)
  count_include_pad = bool_arg(count_include_pad, 'avg_pool2d', 'count_include_pad', true)
  return op(C.gam_avg_pool2d, T(x, 'avg_pool2d', 'input'), kh, kw, sh, sw, ph, pw,
            ceil_mode and 1 or 0, count_include_pad and 1 or 0)
end

--- F.adaptive_avg_pool2d(x, out): out is a number or {oh, ow}
function F.adaptive_avg_pool2d(x, out)
  local oh, ow = pair(out, 'adaptive_avg_pool2d', 'output size', nil, 1)
  return op(C.gam_adaptive_avg_pool2d, T(x, 'adaptive_avg_pool2d', 'input'), oh, ow)
end

--- F.dropout(x, p (0.5), training (true)): zeroes with probability p, scales by 1/(1-p)
function F.dropout(x, p, training)
  p = p == nil and 0.5 or num_arg(p, 'dropout', 'p')
  training = bool_arg(training, 'dropout', 'training', true)
  return op(C.gam_dropout, T(x, 'dropout', 'input'), p, training and 1 or 0)
end

return F
