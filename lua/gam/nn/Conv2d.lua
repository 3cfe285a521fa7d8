-- nn.Conv2d(in_channels, out_channels, kernel_size, {stride = 1, padding = 0, dilation = 1, bias = true})
--   x [n, in, h, w] -> y [n, out, h', w'], h' = floor((h + 2 p - d (k - 1) - 1) / s) + 1
--   weight [out, in, kh, kw], bias [out]; kernel_size, stride, padding and
--   dilation are integers or tables {h, w}.
-- Initialisation (PyTorch's): weight kaiming_uniform_(a = sqrt(5)), i.e.
-- U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = in * kh * kw; bias the same bound.
local tensor = require 'gam.tensor'
local F = require 'gam.functional'
local Module = require 'gam.nn.Module'
local init = require 'gam.nn.weight_init'
local args = require 'gam.argcheck'

local Conv2d = Module:extend('Conv2d')

function Conv2d:__init(in_channels, out_channels, kernel_size, o)
  args.int(in_channels, 'Conv2d', 'in_channels', 1)
  args.int(out_channels, 'Conv2d', 'out_channels', 1)
  o = args.opts(o, 'Conv2d', {'stride', 'padding', 'dilation', 'bias'})
  self.in_channels, self.out_channels = in_channels, out_channels
  self.kernel_size = args.pair(kernel_size, 'Conv2d', 'kernel_size', 1)
  self.stride = args.pair(o.stride or 1, 'Conv2d', 'stride', 1)
  self.padding = args.pair(o.padding or 0, 'Conv2d', 'padding', 0)
  self.dilation = args.pair(o.dilation or 1, 'Conv2d', 'dilation', 1)
  self:register_parameter('weight',
    tensor.empty({out_channels, in_channels, self.kernel_size[1], self.kernel_size[2]}))
  if args.bool(o.bias, true, 'Conv2d', 'bias') then
    self:register_parameter('bias', tensor.empty({out_channels}))
  end
  self:reset_parameters()
end

function Conv2d:reset_parameters()
  init.kaiming_uniform_(self.weight, {a = math.sqrt(5)})
  if self.bias then
    local fan_in = init.calculate_fan_in_and_fan_out(self.weight)
    local bound = 1 / math.sqrt(fan_in)
    init.uniform_(self.bias, -bound, bound)
  end
end

function Conv2d:forward(x)
  return F.conv2d(x, self.weight, self.bias,
                  {stride = self.stride, padding = self.padding, dilation = self.dilation})
end

function Conv2d:extra_repr()
  local pv = Module.pyval
  local s = string.format('%d, %d, kernel_size=%s, stride=%s', self.in_channels, self.out_channels,
                          pv(self.kernel_size), pv(self.stride))
  if self.padding[1] ~= 0 or self.padding[2] ~= 0 then s = s .. ', padding=' .. pv(self.padding) end
  if self.dilation[1] ~= 1 or self.dilation[2] ~= 1 then s = s .. ', dilation=' .. pv(self.dilation) end
  if self.bias == nil then s = s .. ', bias=False' end
  return s
end

return Conv2d
