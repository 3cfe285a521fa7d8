-- Specs for gam.models: parameter counts equal to the PyTorch definitions,
-- PyTorch's names and shapes, forward shapes, the seeds' initialisation and
-- architectural details, options, and memory behaviour.
local gam = require 'gam'
local nn, F, models = gam.nn, gam.F, gam.models

-- Expected parameter counts: obtained once by building the same networks in
-- PyTorch 1.13 (CPU) with tests/models_param_counts.py
--   /usr/bin/python3 tests/models_param_counts.py
-- (that script also prints every parameter and buffer name with its shape
-- with --names; gamlua's lists were diffed against it and are identical).
local COUNTS = {
  resnet18_c = 11173962,
  resnet34_c = 21282122,
  resnet50_c = 23520842,
  resnet101_c = 42512970,
  resnet152_c = 58156618,
  pyramidnet110_c = 18323787,
  pyramidnet272_c = 26210842,
  wrn28_10 = 46160474,
  cnn_small = 421834,
}

local function shape(t) return table.concat(t:shape(), 'x') end

local function error_of(fn)
  local ok, err = pcall(fn)
  assert(not ok, 'expected an error')
  return tostring(err)
end

local function find(list, name)
  for _, e in ipairs(list) do if e.name == name then return e.tensor end end
end

-- builds every model once (construction of the large ones takes a moment)
local built = {}
local function model(name)
  if not built[name] then
    gam.manual_seed(11)
    built[name] = models[name]()
  end
  return built[name]
end

-- One engine thread for this file: the big models run a thousand small ops
-- per forward, and on a machine shared with other jobs OpenMP's barriers make
-- each op wait for a descheduled thread (10x slower overall). These specs
-- check shapes and counts, not speed. The big models go back to the
-- allocator when the file is done.
local saved_threads
setup(function()
  saved_threads = gam.get_num_threads()
  gam.set_num_threads(1)
end)
teardown(function()
  gam.set_num_threads(saved_threads)
  built = {}
  collectgarbage()
  collectgarbage()
end)

local function std_of(t)
  local s2, v = 0, t:tolist()
  for _, x in ipairs(v) do s2 = s2 + x * x end
  return math.sqrt(s2 / #v)
end

describe('model zoo parameter counts', function()
  for _, name in ipairs {'resnet18_c', 'resnet34_c', 'resnet50_c', 'resnet101_c', 'resnet152_c', 'pyramidnet110_c',
                         'pyramidnet272_c', 'wrn28_10', 'cnn_small'} do
    it(name .. ' has ' .. COUNTS[name] .. ' parameters, as in PyTorch', function()
      assert.equal(COUNTS[name], model(name):num_parameters())
    end)
  end

  it('follow num_classes and the generic wrn arguments', function()
    assert.equal(11220132, models.resnet18_c{num_classes = 100}:num_parameters())
    assert.equal(17158106, models.wrn{depth = 16, widen_factor = 8}:num_parameters())
  end)
end)

describe('model zoo names', function()
  it('resnet18_c uses the seed names', function()
    local p = model('resnet18_c'):named_parameters()
    assert.equal('conv1.weight', p[1].name)
    assert.equal('linear.bias', p[#p].name)
    assert.equal('64x3x3x3', shape(find(p, 'conv1.weight')))
    assert.equal('128x64x1x1', shape(find(p, 'layer2.0.shortcut.0.weight')))
    assert.equal('128', shape(find(p, 'layer2.0.shortcut.1.bias')))
    assert.is_nil(find(p, 'layer1.0.shortcut.0.weight'))   -- identity shortcut
    assert.equal('10x512', shape(find(p, 'linear.weight')))
    local b = model('resnet18_c'):named_buffers()
    assert.equal('bn1.running_mean', b[1].name)
    assert.equal(20 * 2, #b)   -- 20 BatchNorms
  end)

  it('pyramidnet110_c grows by 7.5 per block with round-half-even widths', function()
    local p = model('pyramidnet110_c'):named_parameters()
    assert.equal('16x3x3x3', shape(find(p, 'conv1.weight')))
    assert.equal('24x16x1x1', shape(find(p, 'layer1.0.conv1.weight')))    -- round(23.5) = 24
    assert.equal('31x96x1x1', shape(find(p, 'layer1.1.conv1.weight')))
    assert.equal('38x124x1x1', shape(find(p, 'layer1.2.conv1.weight')))   -- round(38.5) = 38
    assert.equal('1144x286x1x1', shape(find(p, 'layer3.11.conv3.weight')))
    assert.equal('10x1144', shape(find(p, 'fc.weight')))
    assert.is_not_nil(find(model('pyramidnet110_c'):named_buffers(), 'bn_final.running_var'))
  end)

  it('wrn28_10 uses the seed names and five units per stage', function()
    local p = model('wrn28_10'):named_parameters()
    assert.equal('f.0_convolution.weight', p[1].name)
    assert.equal('160x16x3x3', shape(find(p, 'f.1_block.block.0.block.0_convolution.weight')))
    assert.equal('16', shape(find(p, 'f.1_block.block.0.norm_act.0_normalization.weight')))
    assert.equal('320x160x1x1', shape(find(p, 'f.2_block.block.0.downsample.weight')))
    assert.equal('640x640x3x3', shape(find(p, 'f.3_block.block.4.block.6_convolution.weight')))
    assert.is_nil(find(p, 'f.3_block.block.5.block.6_convolution.weight'))
    assert.equal('f.8_classification.bias', p[#p].name)
  end)

  it('cnn_small is a Sequential with a 3136-wide classifier', function()
    local p = model('cnn_small'):named_parameters()
    assert.same({'0.weight', '0.bias', '1.weight', '1.bias', '4.weight', '4.bias', '5.weight', '5.bias',
                 '9.weight', '9.bias', '11.weight', '11.bias'}, (function()
      local r = {}
      for i, e in ipairs(p) do r[i] = e.name end
      return r
    end)())
    assert.equal('128x3136', shape(find(p, '9.weight')))
    assert.equal('32x1x3x3', shape(find(p, '0.weight')))
  end)
end)

describe('model zoo forward shapes (batch 2, evaluation, no grad)', function()
  for _, name in ipairs {'resnet18_c', 'resnet34_c', 'resnet50_c', 'resnet101_c', 'resnet152_c', 'pyramidnet110_c',
                         'pyramidnet272_c', 'wrn28_10'} do
    it(name .. ': [2, 3, 32, 32] -> [2, 10]', function()
      local m = model(name)
      m:evaluate()
      local y = gam.scope(function()
        return gam.no_grad(function() return m(gam.randn(2, 3, 32, 32)) end)
      end)
      assert.equal('2x10', shape(y))
      local v = y:tolist()
      for _, x in ipairs(v) do assert.is_true(x == x and math.abs(x) < math.huge) end   -- finite
      m:train()
    end)
  end

  it('cnn_small: [2, 1, 28, 28] -> [2, 10]', function()
    assert.equal('2x10', shape(model('cnn_small')(gam.randn(2, 1, 28, 28))))
  end)

  it('follow in_channels and num_classes', function()
    local m = models.resnet18_c{in_channels = 1, num_classes = 7}
    assert.equal('64x1x3x3', shape(m.conv1.weight))
    local y = gam.no_grad(function() return m(gam.randn(2, 1, 32, 32)) end)
    assert.equal('2x7', shape(y))
    local c = models.cnn_small{in_channels = 3, num_classes = 4}
    assert.equal('2x4', shape(c(gam.randn(2, 3, 28, 28))))
    local w = models.wrn{depth = 10, widen_factor = 1, num_classes = 3, in_channels = 2, dropout = 0.3}
    assert.equal('2x3', shape(w(gam.randn(2, 2, 32, 32))))
    local p = models.pyramidnet110_c{num_classes = 5, in_channels = 1}
    assert.equal('5x1144', shape(p.fc.weight))
    assert.equal('16x1x3x3', shape(p.conv1.weight))
  end)
end)

describe('model zoo initialisation', function()
  it('resnet: PyTorch defaults (kaiming uniform bound 1/sqrt(fan_in))', function()
    local m = model('resnet18_c')
    local w = m.layer1['0'].conv1.weight
    assert.is_true(w:abs():max():item() <= 1 / math.sqrt(64 * 9))
    assert.is_true(math.abs(std_of(w) / (1 / math.sqrt(3 * 64 * 9)) - 1) < 0.05)
    assert.equal(1, m.bn1.weight:max():item())
  end)

  it('pyramidnet: conv weights N(0, sqrt(2 / (kh kw out)))', function()
    local w = model('pyramidnet110_c').layer2['3'].conv2.weight
    local out = w:size(1)
    assert.is_true(math.abs(std_of(w) / math.sqrt(2 / (9 * out)) - 1) < 0.05)
  end)

  it('wrn: conv kaiming normal (fan_in, relu), linear zero', function()
    local m = model('wrn28_10')
    local w = m.f['2_block'].block['1'].block['2_convolution'].weight
    assert.is_true(math.abs(std_of(w) / math.sqrt(2 / (320 * 9)) - 1) < 0.05)
    local fc = m.f['8_classification']
    assert.equal(0, fc.weight:abs():max():item())
    assert.equal(0, fc.bias:abs():max():item())
  end)
end)

describe('model zoo architecture details', function()
  it('pyramid bottleneck: pooled shortcut (ceil mode) with zero channels appended', function()
    local pyr = require 'gam.models.pyramidnet'
    local block = pyr.Bottleneck(4, 2, 2, nn.AvgPool2d({2, 2}, {stride = {2, 2}, ceil_mode = true}))
    block:evaluate()
    block.bn4.weight:fill_(0)   -- the residual branch then outputs bn4.bias = 0
    local x = gam.randn(1, 4, 5, 5)
    local y = block(x)
    assert.equal('1x8x3x3', shape(y))
    local pooled = F.avg_pool2d(x, 2, 2, 0, true)
    local v, p = y:tolist(), pooled:tolist()
    for i = 1, 36 do assert.is_true(math.abs(v[i] - p[i]) < 1e-6) end
    for i = 37, 72 do assert.equal(0, v[i]) end
    -- gradients flow to the input through the cat
    local xg = gam.randn(1, 4, 5, 5)
    xg:requires_grad_(true)
    block:train()
    block(xg):sum():backward()
    assert.is_true(xg.grad:abs():sum():item() > 0)
  end)

  it('pyramid rounding is Python round (half to even)', function()
    local r = require('gam.models.pyramidnet').round_half_even
    assert.same({24, 38, 2, 2, 3, -2}, {r(23.5), r(38.5), r(2.5), r(1.5), r(2.6), r(-2.5)})
  end)

  it('wrn dropout is active in training only', function()
    local w = models.wrn{depth = 10, widen_factor = 1, dropout = 0.5}
    local drops = 0
    for _, m in ipairs(w:modules()) do
      if m:isinstance(nn.Dropout) then
        drops = drops + 1
        assert.equal(0.5, m.p)
      end
    end
    assert.equal(3 * 2, drops)   -- (1 downsample + 1 basic unit) per stage, 3 stages
  end)

  it('options are checked', function()
    assert.matches("unknown option 'classes'", error_of(function() models.resnet18_c{classes = 10} end))
    assert.matches('num_classes must be a positive integer',
                   error_of(function() models.resnet50_c{num_classes = 0} end))
    assert.matches('in_channels', error_of(function() models.cnn_small{in_channels = 'x'} end))
    assert.matches('depth must be 6 n %+ 4', error_of(function() models.wrn{depth = 27} end))
    assert.matches('widen_factor', error_of(function() models.wrn{depth = 10, widen_factor = 0} end))
    assert.matches('dropout', error_of(function() models.wrn28_10{dropout = 2} end))
    assert.matches("unknown model 'resnet19'", error_of(function() models.get('resnet19') end))
    assert.equal(COUNTS.cnn_small, models.get('cnn_small'):num_parameters())
  end)
end)

describe('model zoo training', function()
  it('cnn_small: a few SGD steps on one batch lower the loss; no tensors left behind', function()
    gam.manual_seed(5)
    local m = models.cnn_small()
    local flat, flat_grad = m:flat_parameters()
    local x = gam.randn(8, 1, 28, 28)
    local y = gam.tensor({0, 1, 2, 3, 4, 5, 6, 7}, {dtype = 'int64'})
    local function step()
      return gam.scope(function()
        m:zero_grad()
        local loss = F.cross_entropy(m(x), y):mean()
        loss:backward()
        flat:add_(flat_grad, -0.05)
        return loss:item()
      end)
    end
    local first = step()
    local mem = gam.memory()
    local last
    for _ = 1, 5 do last = step() end
    assert.is_true(last < 0.7 * first, string.format('loss %g -> %g', first, last))
    local after = gam.memory()
    assert.equal(mem.live_tensors, after.live_tensors)
    assert.equal(mem.live_bytes, after.live_bytes)
  end)

  it('resnet18_c: forward and backward at batch 2 fill the flat gradient, memory stays flat', function()
    local m = models.resnet18_c()
    local _, flat_grad = m:flat_parameters()
    local x = gam.randn(2, 3, 32, 32)
    local y = gam.tensor({3, 9}, {dtype = 'int64'})
    local function step()
      gam.scope(function()
        m:zero_grad()
        F.smooth_cross_entropy(m(x), y, 0.1):mean():backward()
      end)
    end
    step()
    local mem = gam.memory()
    step()
    local after = gam.memory()
    assert.equal(mem.live_tensors, after.live_tensors)
    assert.equal(mem.live_bytes, after.live_bytes)
    assert.is_true(flat_grad:abs():sum():item() > 0)
    assert.is_not_nil(m.layer4['1'].bn2.weight.grad)
  end)
end)
