-- Data-parallel optimiser steps on 2 ranks (gam.optim.sync).
--   sync = 'every_pass': 2 ranks × batch B == one process on batch 2B (the
--   concatenation), after 5 steps of GAM, SAM and GSAM, and of plain SGD.
-- The one-process reference runs on every rank beside the distributed model:
-- its hooks average identical vectors, which is exact ((a + a)/2 = a).
local gam = require 'gam'
local dist = gam.dist
local nn, optim, F = gam.nn, gam.optim, gam.F

local r, n = dist.rank(), dist.size()
local B = 4

local function mlp_conv()
  return nn.Sequential{nn.Conv2d(2, 4, 3, {padding = 1}), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                       nn.Linear(4 * 3 * 3, 8), nn.ReLU(), nn.Linear(8, 3)}
end

-- with BatchNorm: SyncBatchNorm on the ranks, BatchNorm2d in the one-process reference
local function bn_conv(sync_bn)
  return function()
    local BN = sync_bn and nn.SyncBatchNorm or nn.BatchNorm2d
    return nn.Sequential{nn.Conv2d(2, 4, 3, {padding = 1}), BN(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 3 * 3, 3)}
  end
end

local function make(kind, model, sync)
  local base = optim.SGD{params = model:parameters(), lr = 0.1, momentum = 0.9, weight_decay = 5e-4}
  if kind == 'SGD' then return base end
  if kind == 'GAM' then
    return optim.GAM{base = base, model = model, grad_rho = 0.05, grad_norm_rho = 0.1, alpha = 0.3,
                     beta = 0.2, gamma = 0.1, sync = sync}
  elseif kind == 'SAM' then
    return optim.SAM{base = base, model = model, rho = 0.1, sync = sync}
  end
  return optim.GSAM{base = base, model = model, rho = 0.1, alpha = 0.3, sync = sync}
end

local function loss_fn(pred, y) return F.cross_entropy(pred, y):mean() end

local function step(opt, kind, model, x, y)
  if kind == 'SGD' then
    opt:zero_grad()
    local loss = loss_fn(model(x), y)
    loss:backward()
    opt:step()
  else
    opt:set_closure(loss_fn, x, y)
    opt:step()
  end
end

-- max over elements of |a − b| / (max |b| + tiny)
local function rel(a, b)
  local d = (a - b):abs():max():item()
  return d / (b:abs():max():item() + 1e-30)
end

-- build_model: a function of no arguments making the same model on every rank
local function every_pass_matches(kind, build_model, build_ref)
  gam.manual_seed(7)
  local model = build_model()
  gam.manual_seed(7)
  local ref = (build_ref or build_model)()
  model:flat_parameters()
  ref:flat_parameters()
  local opt, ref_opt = make(kind, model, 'every_pass'), make(kind, ref, 'every_pass')
  for s = 1, 5 do
    gam.manual_seed(1000 + s)      -- the same global batch on every rank
    local x = gam.randn({n * B, 2, 6, 6})
    local y = gam.randint(0, 3, {n * B})
    step(opt, kind, model, x:narrow(1, r * B + 1, B):clone(), y:narrow(1, r * B + 1, B):clone())
    step(ref_opt, kind, ref, x, y)
  end
  local e = rel(model:flat_parameters(), ref:flat_parameters())
  for _, b in ipairs(model:named_buffers()) do
    local rb
    for _, q in ipairs(ref:named_buffers()) do if q.name == b.name then rb = q.tensor end end
    e = math.max(e, rel(b.tensor, rb))
  end
  local worst = dist.sum_numbers({e})[1]
  assert.is_true(worst <= 1e-5, kind .. ': relative difference ' .. worst)
  -- and the ranks hold the same parameters
  local p = model:flat_parameters():clone()
  local mean = dist.all_reduce(p:clone(), 'mean')
  assert.is_true(rel(p, mean) <= 1e-6)
end

describe('optim sync (2 ranks)', function()
  for _, kind in ipairs {'SGD', 'GAM', 'SAM', 'GSAM'} do
    it(kind .. ": 2 ranks x batch B == one process on batch 2B (every_pass / DDP)", function()
      every_pass_matches(kind, mlp_conv)
    end)
  end

  for _, kind in ipairs {'SGD', 'GAM', 'SAM', 'GSAM'} do
    it(kind .. ': with SyncBatchNorm, 2 ranks x batch B == one process with BatchNorm2d on batch 2B', function()
      every_pass_matches(kind, bn_conv(true), bn_conv(false))
    end)
  end

  it('SyncBatchNorm.convert turns BatchNorm2d layers into SyncBatchNorm, keeping their tensors', function()
    local m = bn_conv(false)()
    local w = m:named_parameters()[3].tensor
    nn.SyncBatchNorm.convert(m)
    assert.are.equal('SyncBatchNorm', m:modules()[3].__typename)
    assert.are.equal(w, m:named_parameters()[3].tensor)
  end)

  it('BatchNorm running statistics are rank 0\'s at each step (DDP broadcast_buffers)', function()
    gam.manual_seed(7)
    local model = bn_conv(false)()
    local opt = make('GAM', model, 'final')
    for s = 1, 3 do
      -- steps 1-2: each rank its own batch; step 3: the same batch on both ranks
      gam.manual_seed(s < 3 and (3000 + 10 * s + r) or 3100)
      local x, y = gam.randn({B, 2, 6, 6}), gam.randint(0, 3, {B})
      step(opt, 'GAM', model, x, y)
      local rm = model:named_buffers()[1].tensor
      local d = rel(rm, dist.all_reduce(rm:clone(), 'mean'))
      if s < 3 then
        assert.is_true(dist.sum_numbers({d})[1] > 1e-6)   -- pass 0 moved each rank's own statistics
      else
        assert.is_true(dist.sum_numbers({d})[1] <= 1e-7)  -- both started from rank 0's, same batch
      end
    end
  end)

  it("sync = 'final' averages only d: the ranks stay equal, and differ from every_pass", function()
    gam.manual_seed(7)
    local a = mlp_conv()
    gam.manual_seed(7)
    local b = mlp_conv()
    local oa, ob = make('GAM', a, 'final'), make('GAM', b, 'every_pass')
    for s = 1, 3 do
      gam.manual_seed(2000 + s)
      local x = gam.randn({n * B, 2, 6, 6})
      local y = gam.randint(0, 3, {n * B})
      local xs, ys = x:narrow(1, r * B + 1, B):clone(), y:narrow(1, r * B + 1, B):clone()
      step(oa, 'GAM', a, xs, ys)
      step(ob, 'GAM', b, xs, ys)
    end
    local pa = a:flat_parameters()
    assert.is_true(rel(pa, dist.all_reduce(pa:clone(), 'mean')) <= 1e-6)
    assert.is_true(rel(pa, b:flat_parameters()) > 1e-6)
  end)

  -- tests/fixtures/dist_final.lua: the same steps in float64 by PyTorch
  -- (tests/fixtures/dist_final_gen.py): each rank's passes on its own batch,
  -- the mean of the d's, SGD with momentum
  for _, kind in ipairs {'GAM', 'SAM', 'GSAM'} do
    it(kind .. " sync = 'final' equals the float64 re-implementation of DDP (2 ranks)", function()
      local here = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$')
      local fx = dofile(here .. '/../fixtures/dist_final.lua')
      assert.are.equal(fx.ranks, n)
      local model = nn.Sequential{nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)}
      for _, e in ipairs(model:named_parameters()) do
        e.tensor:copy_(gam.tensor(fx.w0[e.name]):view(e.tensor:shape()))
      end
      model:flat_parameters()
      local base = optim.SGD{params = model:parameters(), lr = fx.lr, momentum = fx.momentum,
                             weight_decay = fx.weight_decay}
      local h = fx[kind:lower()]
      local opt
      if kind == 'GAM' then
        opt = optim.GAM{base = base, model = model, grad_rho = h.grad_rho, grad_norm_rho = h.grad_norm_rho,
                        alpha = h.alpha, beta = h.beta, gamma = h.gamma, sync = 'final'}
      elseif kind == 'SAM' then
        opt = optim.SAM{base = base, model = model, rho = h.rho, sync = 'final'}
      else
        opt = optim.GSAM{base = base, model = model, rho = h.rho, alpha = h.alpha, sync = 'final'}
      end
      local FB = fx.batch
      for s = 1, fx.steps do
        local x = gam.tensor(fx.x[s]):view({n * FB, 6})
        local y = gam.tensor(fx.y[s], {dtype = 'int64'})
        opt:set_closure(loss_fn, x:narrow(1, r * FB + 1, FB):clone(), y:narrow(1, r * FB + 1, FB):clone())
        opt:step()
      end
      local want = fx[kind:lower() .. '_final']
      for _, e in ipairs(model:named_parameters()) do
        local err = rel(e.tensor, gam.tensor(want[e.name]):view(e.tensor:shape()))
        assert.is_true(err <= 1e-5, string.format('%s %s: relative error %.3g', kind, e.name, err))
      end
    end)
  end

  it('ranks that disagree on options fail at the first step on every rank', function()
    gam.manual_seed(7)
    local model = mlp_conv()
    local base = optim.SGD{params = model:parameters(), lr = 0.1}
    local opt = optim.SAM{base = base, model = model, rho = 0.05 * (r + 1)}
    local x, y = gam.randn({B, 2, 6, 6}), gam.randint(0, 3, {B})
    opt:set_closure(loss_fn, x, y)
    local ok, err = pcall(opt.step, opt)
    assert.is_false(ok)
    assert.truthy(tostring(err):find('optim.SAM: the 2 ranks disagree on rho', 1, true), err)
    local sgd = optim.SGD{params = model:parameters(), lr = 0.1 * (r + 1)}
    ok, err = pcall(sgd.step, sgd)
    assert.is_false(ok)
    assert.truthy(tostring(err):find('optim.SGD: the 2 ranks disagree on lr', 1, true), err)
  end)

  it('a bad sync option is a clear error', function()
    local model = mlp_conv()
    local base = optim.SGD{params = model:parameters(), lr = 0.1}
    assert.has_error(function() optim.GAM{base = base, model = model, sync = 'sometimes'} end,
                     "optim.GAM: sync must be 'final' or 'every_pass', got sometimes")
  end)
end)
