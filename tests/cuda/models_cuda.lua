-- Every model of gam.models on the CUDA backend against its cpu twin (same
-- seed, same weights), and a short training run. Needs a GPU: `make test-cuda`.
--   * model:to('cuda') moves parameters, buffers and the flat arena;
--   * (gam.models.wrn is run without dropout: the devices draw different
--     masks, Philox on cuda; layers_cuda.lua tests dropout's distribution);
--   * forward (training mode: BatchNorm batch statistics), loss, backward on a
--     batch of 2: output, loss, every parameter gradient and the running
--     statistics against the cpu. Tolerance 1e-3 for these whole networks
--     (up to 150 layers of float32 rounding, each op within 1e-4 of the cpu);
--   * a few GAM steps of cnn_small on random data: the loss falls, device
--     memory returns to its baseline every step.
local gam = require 'gam'
local F, optim = gam.F, gam.optim
local here = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.'
local H = dofile(here .. '/helpers.lua')
local DEV, close = H.DEV, H.close

H.require_device('tests/cuda/models_cuda.lua')

local NET_TOL = 1e-3

local function loss_fn(pred, y) return F.smooth_cross_entropy(pred, y, 0.1):mean() end

local function input_shape(name, batch)
  if name == 'cnn_small' then return {batch, 1, 28, 28} end
  return {batch, 3, 32, 32}
end

local function build(name)
  gam.manual_seed(31)
  if name == 'wrn' then return gam.models.wrn{depth = 16, widen_factor = 2, dropout = 0, num_classes = 10} end
  return gam.models[name]{num_classes = 10}
end

describe('models on ' .. DEV, function()
  it('to() moves parameters, buffers and the flat arena (views stay views)', function()
    local m = build('resnet18_c')
    local flat = m:flat_parameters()
    local n = flat:numel()
    local w0 = m:parameters()[1]:tolist()
    m:to(DEV)
    local f2, g2 = m:flat_parameters()
    assert.are.equal(DEV, f2:device())
    assert.are.equal(DEV, g2:device())
    assert.are.equal(n, f2:numel())
    for _, p in ipairs(m:parameters()) do assert.are.equal(DEV, p:device()) end
    for _, e in ipairs(m:named_buffers()) do assert.are.equal(DEV, e.tensor:device(), e.name) end
    assert.are.same(w0, m:parameters()[1]:tolist())
    assert.are.equal(1, require('gam.lib').gam_same_storage(m:parameters()[1].t, f2.t))
    -- and back
    m:to('cpu')
    assert.are.equal('cpu', m:flat_parameters():device())
    assert.are.same(w0, m:parameters()[1]:tolist())
  end)

  -- GAM_CUDA_TESTS_MODELS=a,b restricts the list (e.g. for a dry run on the cpu)
  local names = gam.models.names
  if os.getenv('GAM_CUDA_TESTS_MODELS') then
    names = {}
    for nm in os.getenv('GAM_CUDA_TESTS_MODELS'):gmatch('[^,]+') do names[#names + 1] = nm end
  end
  for _, name in ipairs(names) do
    it(name .. ': forward, loss, backward and BatchNorm statistics match the cpu', function()
      local mc, md = build(name), build(name):to(DEV)
      mc:train()
      md:train()
      gam.manual_seed(5)
      local x, y = gam.randn(input_shape(name, 2)), gam.randint(0, 10, {2})
      local _, gc = mc:flat_parameters()
      local _, gd = md:flat_parameters()
      gc:fill_(0)
      gd:fill_(0)
      gam.scope(function()
        local pc = mc(x)
        local pd = md(x:to(DEV))
        close(pc, pd, name .. ' logits', NET_TOL)
        local lc, ld = loss_fn(pc, y), loss_fn(pd, y:to(DEV))
        close(lc, ld, name .. ' loss', NET_TOL)
        lc:backward()
        ld:backward()
      end)
      local pcs, pds = mc:named_parameters(), md:named_parameters()
      for i, e in ipairs(pcs) do
        close(e.tensor.grad, pds[i].tensor.grad, name .. ' gradient of ' .. e.name, NET_TOL)
      end
      local bcs, bds = mc:named_buffers(), md:named_buffers()
      for i, e in ipairs(bcs) do close(e.tensor, bds[i].tensor, name .. ' buffer ' .. e.name, NET_TOL) end
    end)
  end

  it('evaluation mode (running statistics) gives the cpu logits', function()
    local mc, md = build('resnet18_c'), build('resnet18_c'):to(DEV)
    mc:evaluate()
    md:evaluate()
    gam.manual_seed(6)
    local x = gam.randn({3, 3, 32, 32})
    gam.no_grad(function()
      gam.scope(function() close(mc(x), md(x:to(DEV)), 'resnet18_c eval logits', NET_TOL) end)
    end)
  end)
end)

describe('checkpoints across devices', function()
  it('a model and its optimiser trained on the device save, and load on either device', function()
    local function loss_step(_, opt, x, y)
      opt:set_closure(loss_fn, x, y)
      local _, l = opt:step()
      return l
    end
    local function make(model)
      local base = optim.SGD{params = model:parameters(), lr = 0.01, momentum = 0.9}
      return optim.SAM{base = base, model = model, rho = 0.05}
    end
    gam.manual_seed(12)
    local x, y = gam.randn({4, 1, 28, 28}), gam.randint(0, 10, {4})
    local md = build('cnn_small'):to(DEV)
    local od = make(md)
    loss_step(md, od, x:to(DEV), y:to(DEV))
    local path = os.tmpname()
    gam.save(path, {model = md:state_dict(), opt = od:state_dict()})
    for _, dev in ipairs {'cpu', DEV} do
      local ck = gam.load(path, {device = dev})
      local m = build('cnn_small'):to(dev)
      m:load_state_dict(ck.model)
      local o = make(m)
      o:load_state_dict(ck.opt)
      for name, t in pairs(md:state_dict()) do
        close(t:to('cpu'), m:state_dict()[name]:to(DEV), 'loaded on ' .. dev .. ': ' .. name, nil, true)
      end
      -- the next step continues the same trajectory on both devices
      local l_next = loss_step(m, o, x:to(dev), y:to(dev))
      assert.is_true(l_next == l_next)
    end
    os.remove(path)
  end)
end)

describe('a short training run on ' .. DEV, function()
  it('cnn_small with GAM on a fixed random batch: the loss falls, memory stays flat', function()
    local model = build('cnn_small'):to(DEV)
    model:train()
    local base = optim.SGD{params = model:parameters(), lr = 0.005, momentum = 0.9, weight_decay = 5e-4}
    local opt = optim.GAM{base = base, model = model, grad_rho = 0.03, grad_norm_rho = 0.2, alpha = 0.1,
                          beta = 0.1, gamma = 0.05}
    gam.manual_seed(9)
    local x = gam.randn({32, 1, 28, 28}, {device = DEV})
    local y = gam.randint(0, 10, {32}, {device = DEV})
    opt:set_closure(loss_fn, x, y)
    local losses, live = {}, nil
    for step = 1, 12 do
      local _, loss = gam.scope(function() return opt:step() end)
      losses[step] = loss
      collectgarbage()
      local m = gam.memory()
      if step == 2 then
        live = {m.device_live_bytes, m.live_tensors}
      elseif step > 2 then
        assert.are.same(live, {m.device_live_bytes, m.live_tensors}, 'memory at step ' .. step)
      end
    end
    for _, l in ipairs(losses) do assert.is_true(l == l and l < math.huge) end
    -- (on the cpu, the same run goes from 1.83 to 1.47)
    assert(losses[12] < 0.9 * losses[1], string.format('loss %g -> %g', losses[1], losses[12]))
  end)
end)
