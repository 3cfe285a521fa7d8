-- Specs for gam.nn: the Module contract (names, state dicts, modes, the flat
-- arena, printing, scopes), the layers' arguments and initialisation, and a
-- module-level check against PyTorch (tests/fixtures/golden_layers.lua).
local gam = require 'gam'
local nn, F = gam.nn, gam.F

local here = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.'

local function shape(t) return table.concat(t:shape(), 'x') end

-- max |a - b| over max(max |b|, floor)
local function rel_err(a, b, floor)
  local x, y = a:tolist(), b:tolist()
  assert(#x == #y, string.format('sizes differ: %d vs %d', #x, #y))
  local d, m = 0, floor or 1e-12
  for i = 1, #x do
    d = math.max(d, math.abs(x[i] - y[i]))
    m = math.max(m, math.abs(y[i]))
  end
  return d / m
end

local function same_values(a, b)
  local x, y = a:tolist(), b:tolist()
  if #x ~= #y then return false end
  for i = 1, #x do if x[i] ~= y[i] then return false end end
  return true
end

local function from_fixture(f)
  return gam.tensor(f.data):reshape(f.shape)
end

local function names_of(list)
  local r = {}
  for i, e in ipairs(list) do r[i] = e.name end
  return r
end

local function error_of(fn)
  local ok, err = pcall(fn)
  assert(not ok, 'expected an error')
  return tostring(err)
end

-- a small custom block with children, a parameter of its own and a buffer
local Block = nn.Module:extend('Block')
function Block:__init(c)
  self:register_parameter('scale', gam.ones({1, c, 1, 1}))
  self:add_module('conv1', nn.Conv2d(c, c, 3, {padding = 1, bias = false}))
  self:add_module('bn1', nn.BatchNorm2d(c))
  self:register_buffer('steps', gam.zeros({1}))
  self:add_module('shortcut', nn.Sequential())
end
function Block:forward(x)
  return F.relu(self.bn1(self.conv1(x)) * self.scale + self.shortcut(x))
end

local function small_net()
  return nn.Sequential{nn.Conv2d(2, 3, 3, {padding = 1}), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2),
                       nn.Flatten(), nn.Linear(3 * 2 * 2, 4)}
end

describe('nn.Module names', function()
  it('uses PyTorch dotted names in registration order', function()
    local m = nn.Module()
    m:add_module('stem', nn.Conv2d(3, 4, 3, {bias = false}))
    m:add_module('layer1', nn.Sequential{Block(4), Block(4)})
    m:add_module('fc', nn.Linear(4, 2))
    assert.same({'stem.weight', 'layer1.0.scale', 'layer1.0.conv1.weight', 'layer1.0.bn1.weight',
                 'layer1.0.bn1.bias', 'layer1.1.scale', 'layer1.1.conv1.weight', 'layer1.1.bn1.weight',
                 'layer1.1.bn1.bias', 'fc.weight', 'fc.bias'}, names_of(m:named_parameters()))
    -- a module's own tensors come before its children's, as in PyTorch
    assert.same({'layer1.0.steps', 'layer1.0.bn1.running_mean', 'layer1.0.bn1.running_var',
                 'layer1.1.steps', 'layer1.1.bn1.running_mean', 'layer1.1.bn1.running_var'},
                names_of(m:named_buffers()))
    local e = m:named_parameters()[3]
    assert.equal('layer1.0.conv1.weight', e[1])
    assert.equal(e.tensor, e[2])
    assert.equal(m.layer1['0'].conv1.weight, e.tensor)
  end)

  it("names a Sequential's children 0, 1, ... and accepts {name, module} entries", function()
    local s = small_net()
    assert.same({'0.weight', '0.bias', '1.weight', '1.bias', '5.weight', '5.bias'}, names_of(s:named_parameters()))
    assert.same({'1.running_mean', '1.running_var'}, names_of(s:named_buffers()))
    local n = nn.Sequential{{'0_convolution', nn.Conv2d(1, 2, 1)}, {'act', nn.ReLU()}}
    n:add(nn.Linear(2, 2))
    n:add(nn.Linear(2, 2), 'head')
    assert.same({'0_convolution.weight', '0_convolution.bias', '2.weight', '2.bias', 'head.weight', 'head.bias'},
                names_of(n:named_parameters()))
    assert.equal(4, n:size())
    assert.equal(n.head, n:get(4))
    assert.has_error(function() n:get(5) end)
  end)

  it('lists modules depth first, the root first, and children in order', function()
    local m = nn.Sequential{Block(2), nn.Linear(2, 2)}
    local mods = m:modules()
    assert.equal(6, #mods)   -- Sequential, Block, Conv2d, BatchNorm2d, Sequential (shortcut), Linear
    assert.equal(m, mods[1])
    assert.same({'', '0', '0.conv1', '0.bn1', '0.shortcut', '1'}, names_of(m:named_modules()))
    assert.is_true(mods[3]:isinstance(nn.Conv2d))
    assert.is_true(mods[3]:isinstance(nn.Module))
    assert.is_false(mods[3]:isinstance(nn.Linear))
    assert.equal(2, #m:children())
  end)
end)

describe('nn.Module parameters', function()
  it('are float32 leaves that require grad, the same objects on every call', function()
    local s = small_net()
    local p1, p2 = s:parameters(), s:parameters()
    assert.equal(6, #p1)
    for i, p in ipairs(p1) do
      assert.equal(p2[i], p)
      assert.is_true(p.requires_grad)
      assert.is_nil(p:grad_fn())
      assert.equal('float32', p:dtype())
    end
    assert.equal(2 * 3 * 9 + 3 + 3 + 3 + 12 * 4 + 4, s:num_parameters())
    for _, b in ipairs(s:buffers()) do assert.is_false(b.requires_grad) end
  end)

  it('counts a parameter shared by two modules once', function()
    local a, b = nn.Linear(3, 3), nn.Linear(3, 3)
    b:register_parameter('weight', a.weight)
    local s = nn.Sequential{a, b}
    assert.same({'0.weight', '0.bias', '1.bias'}, names_of(s:named_parameters()))
  end)

  it('rejects bad registrations with a clear error', function()
    local m = nn.Module()
    assert.matches("must not contain '%.'", error_of(function() m:register_parameter('a.b', gam.zeros(2)) end))
    assert.matches('reserved', error_of(function() m:register_parameter('forward', gam.zeros(2)) end))
    assert.matches('reserved', error_of(function() m:add_module('training', nn.ReLU()) end))
    assert.matches('must be a tensor', error_of(function() m:register_parameter('w', 3) end))
    assert.matches('float32', error_of(function() m:register_parameter('w', gam.zeros(2, {dtype = 'int64'})) end))
    local x = gam.zeros(2)
    x:requires_grad_(true)
    assert.matches('leaf', error_of(function() m:register_parameter('w', x * 2) end))
    assert.matches('nn module', error_of(function() m:add_module('c', {}) end))
    m:register_parameter('w', gam.zeros(2))
    assert.matches('already a parameter', error_of(function() m:register_buffer('w', gam.zeros(2)) end))
    assert.matches('forward is not implemented', error_of(function() m(gam.zeros(1)) end))
  end)

  it('apply visits children before their parent', function()
    local s = nn.Sequential{nn.Linear(2, 2), nn.Sequential{nn.ReLU()}}
    local seen = {}
    s:apply(function(m) seen[#seen + 1] = m.__typename end)
    assert.same({'Linear', 'ReLU', 'Sequential', 'Sequential'}, seen)
  end)
end)

describe('layer constructors', function()
  it('check their arguments', function()
    assert.matches('in_features must be an integer', error_of(function() nn.Linear('a', 3) end))
    assert.matches('out_features must be >= 1', error_of(function() nn.Linear(3, 0) end))
    assert.matches("unknown option 'biass'", error_of(function() nn.Linear(3, 2, {biass = false}) end))
    assert.matches('kernel_size', error_of(function() nn.Conv2d(3, 4, {3}) end))
    assert.matches('padding must be >= 0', error_of(function() nn.Conv2d(3, 4, 3, {padding = -1}) end))
    assert.matches('stride', error_of(function() nn.Conv2d(3, 4, 3, {stride = 0}) end))
    assert.matches('bias must be true or false', error_of(function() nn.Conv2d(3, 4, 3, {bias = 0}) end))
    assert.matches('momentum', error_of(function() nn.BatchNorm2d(3, {momentum = 2}) end))
    assert.matches('p = 1.5', error_of(function() nn.Dropout(1.5) end))
    assert.matches('kernel_size', error_of(function() nn.MaxPool2d(0) end))
    assert.matches('output_size', error_of(function() nn.AdaptiveAvgPool2d('x') end))
    assert.matches('table of modules', error_of(function() nn.Sequential(3) end))
    assert.matches('entry 2 is not a module', error_of(function() nn.Sequential{nn.ReLU(), 5} end))
  end)

  it('BatchNorm2d rejects inputs of the wrong rank or width', function()
    local bn = nn.BatchNorm2d(3)
    assert.matches('4%-D input', error_of(function() bn(gam.zeros(2, 3)) end))
    assert.matches('input has 2 channels', error_of(function() bn(gam.zeros(2, 2, 4, 4)) end))
    assert.matches('input must be a tensor', error_of(function() bn(nil) end))
  end)

  it('Conv2d passes stride, padding and dilation to the convolution', function()
    local c = nn.Conv2d(2, 5, {3, 2}, {stride = {2, 1}, padding = {1, 0}, dilation = {1, 2}})
    local x = gam.randn(2, 2, 7, 9)
    local y = c(x)
    assert.equal('2x5x4x7', shape(y))
    local ref = F.conv2d(x, c.weight, c.bias, {stride = {2, 1}, padding = {1, 0}, dilation = {1, 2}})
    assert.is_true(same_values(y, ref))
  end)

  it('Linear computes x W^T + b', function()
    local l = nn.Linear(3, 2)
    local x = gam.randn(4, 3)
    local ref = x:matmul(l.weight:t()) + l.bias
    assert.is_true(rel_err(l(x), ref) < 1e-6)
    local nb = nn.Linear(3, 2, {bias = false})
    assert.is_nil(nb.bias)
    assert.equal(1, #nb:parameters())
    assert.is_true(rel_err(nb(x), x:matmul(nb.weight:t())) < 1e-6)
  end)

  it('pooling, flatten and identity layers give the expected shapes', function()
    local x = gam.randn(2, 3, 7, 9)
    assert.equal('2x3x3x4', shape(nn.MaxPool2d(2)(x)))
    assert.equal('2x3x4x5', shape(nn.MaxPool2d(2, {ceil_mode = true})(x)))
    assert.equal('2x3x4x5', shape(nn.AvgPool2d(3, {stride = 2, padding = 1})(x)))
    assert.equal('2x3x1x1', shape(nn.AdaptiveAvgPool2d(1)(x)))
    assert.equal('2x3x2x3', shape(nn.AdaptiveAvgPool2d({2, 3})(x)))
    assert.equal('2x189', shape(nn.Flatten()(x)))
    assert.equal('2x3x63', shape(nn.Flatten(3)(x)))
    assert.equal(x, nn.Identity()(x))
    local g = nn.AdaptiveAvgPool2d(1)(x):reshape(2, 3)
    assert.is_true(rel_err(g, x:reshape(2, 3, 63):mean(3)) < 1e-5)
  end)
end)

describe('default initialisation', function()
  -- U(-b, b): every value inside, the extremes near b, variance b^2 / 3
  local function check_uniform(t, b)
    local v = t:tolist()
    local lo, hi, s, s2 = math.huge, -math.huge, 0, 0
    for _, x in ipairs(v) do
      lo, hi, s, s2 = math.min(lo, x), math.max(hi, x), s + x, s2 + x * x
    end
    local n = #v
    assert.is_true(lo >= -b and hi <= b, string.format('values in [%g, %g] outside +-%g', lo, hi, b))
    assert.is_true(lo < -0.9 * b and hi > 0.9 * b, string.format('range [%g, %g] too narrow for +-%g', lo, hi, b))
    local mean, var = s / n, s2 / n - (s / n) ^ 2
    assert.is_true(math.abs(mean) < 0.1 * b, 'mean ' .. mean)
    assert.is_true(math.abs(var / (b * b / 3) - 1) < 0.1, string.format('variance %g, expected %g', var, b * b / 3))
  end

  it('Linear: weight and bias U(-1/sqrt(in), 1/sqrt(in))', function()
    local l = nn.Linear(50, 80)
    check_uniform(l.weight, 1 / math.sqrt(50))
    local big = nn.Linear(50, 2000)
    check_uniform(big.bias, 1 / math.sqrt(50))
  end)

  it('Conv2d: weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in kh kw', function()
    local c = nn.Conv2d(8, 64, 3)
    check_uniform(c.weight, 1 / math.sqrt(72))
    local wide = nn.Conv2d(2, 3000, {1, 2})
    check_uniform(wide.bias, 1 / math.sqrt(4))
  end)

  it('BatchNorm2d: weight 1, bias 0, running mean 0, running var 1, momentum 0.1, eps 1e-5', function()
    local bn = nn.BatchNorm2d(5)
    assert.same({1, 1, 1, 1, 1}, bn.weight:tolist())
    assert.same({0, 0, 0, 0, 0}, bn.bias:tolist())
    assert.same({0, 0, 0, 0, 0}, bn.running_mean:tolist())
    assert.same({1, 1, 1, 1, 1}, bn.running_var:tolist())
    assert.equal(0.1, bn.momentum)
    assert.equal(1e-5, bn.eps)
    local na = nn.BatchNorm2d(5, {affine = false})
    assert.equal(0, #na:parameters())
    assert.equal(2, #na:buffers())
    local y = na(gam.randn(2, 5, 2, 2) * 3 + 1)
    assert.is_true(math.abs(y:mean():item()) < 1e-5)
  end)

  it('follows gam.manual_seed', function()
    gam.manual_seed(7)
    local a = nn.Linear(4, 3)
    gam.manual_seed(7)
    local b = nn.Linear(4, 3)
    assert.is_true(same_values(a.weight, b.weight) and same_values(a.bias, b.bias))
  end)

  it('nn.init: fans, gains, kaiming_normal_ and constants', function()
    local w = gam.empty({64, 16, 3, 3})
    local fi, fo = nn.init.calculate_fan_in_and_fan_out(w)
    assert.equal(144, fi)
    assert.equal(576, fo)
    assert.equal(math.sqrt(2), nn.init.calculate_gain('relu'))
    assert.is_true(math.abs(nn.init.calculate_gain('leaky_relu', math.sqrt(5)) - math.sqrt(1 / 3)) < 1e-12)
    nn.init.kaiming_normal_(w, {mode = 'fan_in', nonlinearity = 'relu'})
    local v, s2 = w:tolist(), 0
    for _, x in ipairs(v) do s2 = s2 + x * x end
    local std = math.sqrt(s2 / #v)
    assert.is_true(math.abs(std / math.sqrt(2 / 144) - 1) < 0.05, 'std ' .. std)
    nn.init.constant_(w, 0.25)
    assert.equal(0.25, w:max():item())
    assert.matches('mode', error_of(function() nn.init.kaiming_uniform_(w, {mode = 'fan'}) end))
    assert.matches('at least 2 dims', error_of(function() nn.init.calculate_fan_in_and_fan_out(gam.zeros(3)) end))
  end)
end)

describe('state_dict and load_state_dict', function()
  local function trained_net()
    local n = small_net()
    n:train()
    n(gam.randn(4, 2, 4, 4))           -- moves the running statistics
    return n
  end

  it('round-trips into a freshly initialised model', function()
    local a = trained_net()
    local sd = a:state_dict()
    local keys = {}
    for k in pairs(sd) do keys[#keys + 1] = k end
    table.sort(keys)
    assert.same({'0.bias', '0.weight', '1.bias', '1.running_mean', '1.running_var', '1.weight', '5.bias', '5.weight'},
                keys)
    assert.same({'0.weight', '0.bias', '1.weight', '1.bias', '5.weight', '5.bias', '1.running_mean',
                 '1.running_var'}, a:state_names())
    local b = small_net()
    local x = gam.randn(3, 2, 4, 4)
    a:evaluate(); b:evaluate()
    assert.is_false(same_values(a(x), b(x)))
    local r = b:load_state_dict(sd)
    assert.same({}, r.missing_keys)
    assert.same({}, r.unexpected_keys)
    assert.is_true(same_values(a(x), b(x)))
    a:train(); b:train()
    assert.is_true(same_values(a(x), b(x)))
    assert.is_true(same_values(a['1'].running_var, b['1'].running_var))
  end)

  it('gives detached views by default and copies on request', function()
    local n = small_net()
    local view, copy = n:state_dict(), n:state_dict({copy = true})
    assert.is_false(view['0.weight'].requires_grad)
    n['0'].weight:fill_(3)
    n['1'].running_mean:fill_(2)
    assert.equal(3, view['0.weight']:max():item())
    assert.equal(2, view['1.running_mean']:max():item())
    assert.is_true(copy['0.weight']:max():item() < 1)
    assert.equal(0, copy['1.running_mean']:max():item())
  end)

  it('names every missing, unexpected or mis-shaped entry and changes nothing', function()
    local n = small_net()
    local before = n['0'].weight:clone()
    local sd = small_net():state_dict({copy = true})
    sd['0.bias'] = nil
    sd['extra.weight'] = gam.zeros(2, 2)
    local err = error_of(function() n:load_state_dict(sd) end)
    assert.matches("missing key '0%.bias' %(the model has shape %[3%]%)", err)
    assert.matches("unexpected key 'extra%.weight' %(shape %[2, 2%]%)", err)
    assert.is_true(same_values(n['0'].weight, before))

    sd = small_net():state_dict()
    sd['5.weight'] = gam.zeros(4, 13)
    err = error_of(function() n:load_state_dict(sd) end)
    assert.matches("size mismatch for '5%.weight': the state dict has shape %[4, 13%], the model %[4, 12%]", err)
    assert.is_true(same_values(n['0'].weight, before))
    -- mis-shaped entries are an error even when not strict
    assert.has_error(function() n:load_state_dict(sd, {strict = false}) end)

    sd = small_net():state_dict()
    sd['1.running_var'] = 'not a tensor'
    assert.matches("'1%.running_var' is a string", error_of(function() n:load_state_dict(sd) end))
    assert.matches('expected a table', error_of(function() n:load_state_dict(nil) end))
  end)

  it('strict = false loads what matches and reports the rest', function()
    local n = small_net()
    local src = small_net()
    local sd = src:state_dict()
    sd['0.bias'] = nil
    sd['head.bias'] = gam.zeros(4)
    local r = n:load_state_dict(sd, {strict = false})
    assert.same({'0.bias'}, r.missing_keys)
    assert.same({'head.bias'}, r.unexpected_keys)
    assert.is_true(same_values(n['5'].weight, src['5'].weight))
    assert.is_false(same_values(n['0'].bias, src['0'].bias))
  end)

  it("accepts and ignores PyTorch's num_batches_tracked of a BatchNorm", function()
    local n = small_net()
    local sd = small_net():state_dict()
    sd['1.num_batches_tracked'] = gam.tensor(3, {dtype = 'int64'})
    n:load_state_dict(sd)
    sd['0.num_batches_tracked'] = gam.tensor(3, {dtype = 'int64'})   -- module 0 is a Conv2d
    assert.matches("unexpected key '0%.num_batches_tracked'", error_of(function() n:load_state_dict(sd) end))
  end)
end)

describe('train and evaluate', function()
  it('switch the training flag recursively', function()
    local m = nn.Sequential{Block(2), nn.Dropout(0.5)}
    assert.is_true(m.training)
    m:evaluate()
    for _, x in ipairs(m:modules()) do assert.is_false(x.training) end
    m:train()
    for _, x in ipairs(m:modules()) do assert.is_true(x.training) end
    m:train(false)
    assert.is_false(m['0'].bn1.training)
    assert.equal(m, m:eval())
  end)

  it('BatchNorm2d: batch statistics and running-stat updates in training, running stats in evaluation', function()
    local bn = nn.BatchNorm2d(2)
    -- channel 1 holds 1..8, channel 2 holds 2 * (1..8)
    local data = {}
    for n = 1, 2 do
      data[n] = {}
      for c = 1, 2 do
        data[n][c] = {}
        for i = 1, 2 do
          data[n][c][i] = {}
          for j = 1, 2 do data[n][c][i][j] = c * ((n - 1) * 4 + (i - 1) * 2 + j) end
        end
      end
    end
    local x = gam.tensor(data)
    local y = bn(x)
    -- mean 4.5 (9), unbiased var 6 (24): running = 0.9 * (0, 1) + 0.1 * batch
    local rm, rv = bn.running_mean:tolist(), bn.running_var:tolist()
    assert.is_true(math.abs(rm[1] - 0.45) < 1e-6 and math.abs(rm[2] - 0.9) < 1e-6)
    assert.is_true(math.abs(rv[1] - (0.9 + 0.6)) < 1e-5 and math.abs(rv[2] - (0.9 + 2.4)) < 1e-5)
    -- batch-normalised output: mean 0, biased variance 1 per channel
    local s = y:reshape(2, 2, 4):sum(3):sum(1):tolist()
    assert.is_true(math.abs(s[1]) < 1e-4 and math.abs(s[2]) < 1e-4)
    -- momentum 0 (what optimisers set for their extra passes) leaves the running stats alone
    bn.momentum = 0
    bn(x)
    assert.same(rm, bn.running_mean:tolist())
    assert.same(rv, bn.running_var:tolist())
    -- evaluation: (x - running_mean) / sqrt(running_var + eps), no update
    bn:evaluate()
    local ye = bn(x):totable()
    assert.is_true(math.abs(ye[1][1][1][1] - (1 - 0.45) / math.sqrt(1.5 + 1e-5)) < 1e-5)
    assert.same(rm, bn.running_mean:tolist())
  end)

  it('Dropout: zeroes and rescales in training, identity in evaluation', function()
    local d = nn.Dropout(0.5)
    local x = gam.ones({4000})
    local v = d(x):tolist()
    local zeros, twos = 0, 0
    for _, a in ipairs(v) do
      if a == 0 then zeros = zeros + 1 elseif math.abs(a - 2) < 1e-6 then twos = twos + 1 end
    end
    assert.equal(4000, zeros + twos)
    assert.is_true(zeros > 1800 and zeros < 2200, 'zeros: ' .. zeros)
    d:evaluate()
    assert.is_true(same_values(d(x), x))
    local all = nn.Dropout(1)
    assert.equal(0, all(x):abs():sum():item())
    all:evaluate()
    assert.is_true(same_values(all(x), x))
  end)
end)

describe('the flat parameter arena', function()
  it('makes every parameter a view of one buffer, in parameters() order', function()
    local n = small_net()
    local params = n:parameters()
    local values = {}
    for _, p in ipairs(params) do
      for _, v in ipairs(p:tolist()) do values[#values + 1] = v end
    end
    local flat, flat_grad = n:flat_parameters()
    assert.equal(n:num_parameters(), flat:numel())
    assert.equal(flat:numel(), flat_grad:numel())
    assert.same(values, flat:tolist())
    local f2, g2 = n:flat_parameters()
    assert.equal(flat, f2)
    assert.equal(flat_grad, g2)
    assert.equal(params[1], n:parameters()[1])
    -- writing the flat buffer changes the parameters, and the other way round
    local sd = n:state_dict()
    flat:fill_(0.5)
    assert.equal(0.5, n['5'].weight:max():item())
    assert.equal(0.5, (-sd['5.weight']):max():item() * -1)   -- state_dict views see the arena
    n['0'].bias:fill_(-1)
    local fv = flat:tolist()
    assert.equal(-1, fv[2 * 3 * 9 + 1])
    assert.equal(0.5, fv[2 * 3 * 9])
  end)

  it('backward fills the flat gradient; zero_grad zeroes it in place', function()
    local n = small_net()
    local _, flat_grad = n:flat_parameters()
    local x = gam.randn(3, 2, 4, 4)
    n(x):sum():backward()
    local got = flat_grad:tolist()
    local k, nonzero = 0, 0
    for _, p in ipairs(n:parameters()) do
      local g = p.grad
      assert.is_not_nil(g)
      for _, v in ipairs(g:tolist()) do
        k = k + 1
        assert.equal(v, got[k])
        if v ~= 0 then nonzero = nonzero + 1 end
      end
    end
    assert.equal(flat_grad:numel(), k)
    assert.is_true(nonzero > k / 2)
    -- a second backward accumulates
    n(x):sum():backward()
    local twice = flat_grad:tolist()
    assert.is_true(math.abs(twice[1] - 2 * got[1]) <= 1e-5 * math.max(1, math.abs(got[1])))
    n:zero_grad()
    assert.equal(0, flat_grad:abs():sum():item())
    for _, p in ipairs(n:parameters()) do assert.is_not_nil(p.grad) end
    n(x):sum():backward()
    assert.same(got, flat_grad:tolist())
  end)

  it('refuses a second arena over the same parameters and a model without parameters', function()
    local inner = nn.Linear(2, 2)
    local outer = nn.Sequential{inner, nn.Linear(2, 1)}
    outer:flat_parameters()
    assert.matches('already lives in the flat arena', error_of(function() inner:flat_parameters() end))
    assert.matches('no parameters', error_of(function() nn.ReLU():flat_parameters() end))
  end)

  it('zero_grad without an arena zeroes existing gradients in place', function()
    local l = nn.Linear(3, 2)
    l(gam.randn(2, 3)):sum():backward()
    local g = l.weight.grad
    assert.is_true(g:abs():sum():item() > 0)
    l:zero_grad()
    assert.equal(0, g:abs():sum():item())
    assert.is_not_nil(l.weight.grad)
  end)
end)

describe('to(device)', function()
  it("keeps a CPU model in place and rejects unknown devices", function()
    local n = small_net()
    local p = n:parameters()
    assert.equal(n, n:to('cpu'))
    assert.equal(p[1], n:parameters()[1])
    assert.matches("expected a device", error_of(function() n:to('gpu') end))
  end)
end)

describe('__tostring', function()
  it('prints the tree like PyTorch', function()
    local s = nn.Sequential{nn.Conv2d(2, 3, 3, {padding = 1, bias = false}), nn.BatchNorm2d(3), nn.ReLU(),
                            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(27, 4), nn.Dropout(0.25),
                            nn.AvgPool2d(3, {stride = 2, padding = 1}), nn.AdaptiveAvgPool2d({2, 3}),
                            nn.Conv2d(3, 8, {3, 5}, {stride = {1, 2}, dilation = 2}), nn.Identity()}
    assert.equal(table.concat({
      'Sequential(',
      '  (0): Conv2d(2, 3, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)',
      '  (1): BatchNorm2d(3, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)',
      '  (2): ReLU()',
      '  (3): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)',
      '  (4): Flatten(start_dim=2, end_dim=-1)',
      '  (5): Linear(in_features=27, out_features=4, bias=True)',
      '  (6): Dropout(p=0.25, inplace=False)',
      '  (7): AvgPool2d(kernel_size=3, stride=2, padding=1)',
      '  (8): AdaptiveAvgPool2d(output_size=(2, 3))',
      '  (9): Conv2d(3, 8, kernel_size=(3, 5), stride=(1, 2), dilation=(2, 2))',
      '  (10): Identity()',
      ')'}, '\n'), tostring(s))
  end)

  it('indents nested modules and prints empty containers on one line', function()
    local m = nn.Sequential{Block(2)}
    assert.equal(table.concat({
      'Sequential(',
      '  (0): Block(',
      '    (conv1): Conv2d(2, 2, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)',
      '    (bn1): BatchNorm2d(2, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)',
      '    (shortcut): Sequential()',
      '  )',
      ')'}, '\n'), tostring(m))
    assert.equal('nn.Linear (class)', tostring(nn.Linear))
  end)
end)

describe('gam.scope and modules', function()
  it('keeps parameters and buffers of a model built inside a scope', function()
    local n = gam.scope(function()
      local m = small_net()
      m(gam.randn(2, 2, 4, 4))
      return {m}
    end)[1]
    for _, p in ipairs(n:parameters()) do assert.is_true(p:is_alive()) end
    for _, b in ipairs(n:buffers()) do assert.is_true(b:is_alive()) end
    assert.equal('2x4', shape(n(gam.randn(2, 2, 4, 4))))
  end)

  it('forward and backward inside a scope leave no tensors behind', function()
    local n = nn.Sequential{Block(3), nn.Flatten(), nn.Linear(3 * 4 * 4, 5), nn.Dropout(0.2)}
    n:flat_parameters()
    local x = gam.randn(2, 3, 4, 4)
    local target = gam.tensor({1, 4}, {dtype = 'int64'})
    local function step()
      gam.scope(function()
        n:zero_grad()
        F.cross_entropy(n(x), target):mean():backward()
      end)
    end
    step()
    local m0 = gam.memory()
    for _ = 1, 5 do step() end
    local m1 = gam.memory()
    assert.equal(m0.live_tensors, m1.live_tensors)
    assert.equal(m0.live_bytes, m1.live_bytes)
  end)
end)

describe('gradients through modules', function()
  it('match central finite differences for a conv/BN/pool/linear network', function()
    gam.manual_seed(3)
    local n = nn.Sequential{nn.Conv2d(2, 3, 3, {padding = 1}), nn.BatchNorm2d(3), nn.ReLU(),
                            nn.AvgPool2d(2), nn.Flatten(), nn.Linear(12, 2)}
    local x = gam.randn(3, 2, 4, 4)
    local r = gam.randn(3, 2)
    local function loss() return (n(x) * r):sum() end
    n:evaluate()   -- fixed statistics keep the loss smooth in every parameter
    n['1'].running_mean:copy_(gam.tensor({0.1, -0.2, 0.05}))
    n['1'].running_var:copy_(gam.tensor({0.8, 1.3, 1.1}))
    local flat, flat_grad = n:flat_parameters()
    n:zero_grad()
    loss():backward()
    local g = flat_grad:tolist()
    local h = 1e-3
    local worst = 0
    for _, i in ipairs {1, 7, 54, 55, 58, 61, 64, 70, 88} do   -- conv w/b, bn w/b, linear w/b
      local v = flat:tolist()
      local function at(val)
        local moved = {unpack(v)}
        moved[i] = val
        flat:copy_(gam.tensor(moved))
        return gam.no_grad(loss):item()
      end
      local num = (at(v[i] + h) - at(v[i] - h)) / (2 * h)
      flat:copy_(gam.tensor(v))
      worst = math.max(worst, math.abs(num - g[i]) / math.max(1e-2, math.abs(g[i])))
    end
    assert.is_true(worst < 2e-2, 'worst relative error ' .. worst)
  end)
end)

describe('modules against PyTorch (tests/fixtures/golden_layers.lua)', function()
  it('a Sequential of layers reproduces the F-level golden network by name', function()
    local fx = dofile(here .. '/fixtures/golden_layers.lua')
    local net = nn.Sequential{
      nn.Conv2d(3, 4, 3, {padding = 1}), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
      nn.Conv2d(4, 6, 3, {padding = 2, dilation = 2, bias = false}), nn.BatchNorm2d(6), nn.ReLU(),
      nn.AvgPool2d(3, {stride = 2, padding = 1, ceil_mode = true, count_include_pad = false}),
      nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, 5)}
    local I = fx.inputs
    local by_name = {['0.weight'] = 'conv1_w', ['0.bias'] = 'conv1_b', ['1.weight'] = 'bn1_w', ['1.bias'] = 'bn1_b',
                     ['1.running_mean'] = 'bn1_rm', ['1.running_var'] = 'bn1_rv', ['4.weight'] = 'conv2_w',
                     ['5.weight'] = 'bn2_w', ['5.bias'] = 'bn2_b', ['5.running_mean'] = 'bn2_rm',
                     ['5.running_var'] = 'bn2_rv', ['10.weight'] = 'lin_w', ['10.bias'] = 'lin_b'}
    local sd = {}
    for name, key in pairs(by_name) do sd[name] = from_fixture(I[key]) end
    net:load_state_dict(sd)
    local _, flat_grad = net:flat_parameters()
    net:train()
    local out = net(from_fixture(I.x))
    assert.is_true(rel_err(out, from_fixture(fx.out_train)) < 1e-4)
    local loss = (out * from_fixture(I.r)):sum()
    loss:backward()
    for _, e in ipairs(net:named_parameters()) do
      -- (the conv bias before a training-mode BN has a zero gradient: compare it absolutely)
      local err = rel_err(e.tensor.grad, from_fixture(fx.grads[by_name[e.name]]), 1e-3)
      assert.is_true(err < 1e-3, e.name .. ' gradient error ' .. err)
    end
    assert.is_true(flat_grad:abs():sum():item() > 0)
    local running = {['1.running_mean'] = 'bn1_rm', ['1.running_var'] = 'bn1_rv', ['5.running_mean'] = 'bn2_rm',
                     ['5.running_var'] = 'bn2_rv'}
    for _, e in ipairs(net:named_buffers()) do
      assert.is_true(rel_err(e.tensor, from_fixture(fx.running[running[e.name]])) < 1e-5, e.name)
    end
    net:evaluate()
    assert.is_true(rel_err(gam.no_grad(function() return net(from_fixture(I.x)) end), from_fixture(fx.out_eval)) < 1e-4)
  end)
end)
