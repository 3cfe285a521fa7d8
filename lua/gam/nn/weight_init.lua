-- nn.init — in-place initialisers (torch.nn.init's formulas). Each fills t
-- without recording autograd and returns t.
--
--   fan_in  = size(2) * receptive field,  fan_out = size(1) * receptive field
--   kaiming_uniform_(t, {a, mode, nonlinearity}): U(-b, b), b = gain * sqrt(3 / fan)
--   kaiming_normal_(t, {a, mode, nonlinearity}):  N(0, std), std = gain / sqrt(fan)
--   xavier_uniform_(t, gain): U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out))
--   xavier_normal_(t, gain):  N(0, gain * sqrt(2 / (fan_in + fan_out)))
local tensor = require 'gam.tensor'
local argcheck = require 'gam.argcheck'

local init = {}

local function check_t(t, fn)
  if not tensor.is_tensor(t) then argcheck.fail('init.%s: expected a tensor, got %s', fn, type(t)) end
end

-- fills t with the values of the new tensor src (then freed)
local function fill_from(t, src)
  t:copy_(src)
  tensor.release(src)
  return t
end

function init.uniform_(t, a, b)
  check_t(t, 'uniform_')
  a, b = a or 0, b or 1
  if b < a then argcheck.fail('init.uniform_: upper bound %g is below lower bound %g', b, a) end
  return fill_from(t, tensor.rand(t:shape(), {low = a, high = b}))
end

function init.normal_(t, mean, std)
  check_t(t, 'normal_')
  mean, std = mean or 0, std or 1
  if std < 0 then argcheck.fail('init.normal_: std must be >= 0, got %g', std) end
  return fill_from(t, tensor.randn(t:shape(), {mean = mean, std = std}))
end

function init.constant_(t, v)
  check_t(t, 'constant_')
  return t:fill_(v)
end
function init.zeros_(t) return init.constant_(t, 0) end
function init.ones_(t) return init.constant_(t, 1) end

--- fan_in, fan_out of a weight (Linear [out, in], Conv [out, in, kh, kw])
function init.calculate_fan_in_and_fan_out(t)
  check_t(t, 'calculate_fan_in_and_fan_out')
  local s = t:shape()
  if #s < 2 then
    argcheck.fail('init: fan in and fan out need a tensor with at least 2 dims, got %d', #s)
  end
  local rf = 1
  for i = 3, #s do rf = rf * s[i] end
  return s[2] * rf, s[1] * rf
end

--- gain of a nonlinearity: 'linear', 'conv2d', 'sigmoid', 'tanh', 'relu', 'leaky_relu' (param = slope)
function init.calculate_gain(nonlinearity, param)
  local nl = nonlinearity or 'leaky_relu'
  if nl == 'linear' or nl == 'conv1d' or nl == 'conv2d' or nl == 'conv3d' or nl == 'sigmoid' then return 1 end
  if nl == 'tanh' then return 5 / 3 end
  if nl == 'relu' then return math.sqrt(2) end
  if nl == 'leaky_relu' then
    local slope = param or 0.01
    return math.sqrt(2 / (1 + slope * slope))
  end
  if nl == 'selu' then return 3 / 4 end
  argcheck.fail("init.calculate_gain: unknown nonlinearity '%s'", tostring(nl))
end

local function kaiming_std(t, o, fn)
  o = o or {}
  if type(o) ~= 'table' then argcheck.fail('init.%s: options must be a table {a =, mode =, nonlinearity =}', fn) end
  local mode = o.mode or 'fan_in'
  if mode ~= 'fan_in' and mode ~= 'fan_out' then
    argcheck.fail("init.%s: mode must be 'fan_in' or 'fan_out', got '%s'", fn, tostring(mode))
  end
  local fan_in, fan_out = init.calculate_fan_in_and_fan_out(t)
  local fan = mode == 'fan_in' and fan_in or fan_out
  local gain = init.calculate_gain(o.nonlinearity or 'leaky_relu', o.a or 0)
  return fan > 0 and gain / math.sqrt(fan) or 0
end

function init.kaiming_uniform_(t, o)
  check_t(t, 'kaiming_uniform_')
  local bound = math.sqrt(3) * kaiming_std(t, o, 'kaiming_uniform_')
  return init.uniform_(t, -bound, bound)
end

function init.kaiming_normal_(t, o)
  check_t(t, 'kaiming_normal_')
  return init.normal_(t, 0, kaiming_std(t, o, 'kaiming_normal_'))
end

function init.xavier_uniform_(t, gain)
  check_t(t, 'xavier_uniform_')
  local fi, fo = init.calculate_fan_in_and_fan_out(t)
  local bound = (gain or 1) * math.sqrt(6 / (fi + fo))
  return init.uniform_(t, -bound, bound)
end

function init.xavier_normal_(t, gain)
  check_t(t, 'xavier_normal_')
  local fi, fo = init.calculate_fan_in_and_fan_out(t)
  return init.normal_(t, 0, (gain or 1) * math.sqrt(2 / (fi + fo)))
end

return init
