-- The fused optimiser kernels (kernels/optim.cu) and the SAM family on the
-- CUDA backend against the cpu backend. Needs a GPU: `make test-cuda`.
--   * every pass of engine/optim.c, host-scalar and _s forms, on odd sizes;
--   * the scalars block: checks, the first failure kept, guarded base steps;
--   * GAM / SAM / GSAM steps (SGD, Adam, AdamW bases; adaptive; a BatchNorm
--     CNN) on cuda against the same steps on the cpu;
--   * a failing GPU step: the error names the pass, the parameters and the
--     base optimiser's state are as before, the step count is unchanged.
local ffi = require 'ffi'
local gam = require 'gam'
local nn, optim, F = gam.nn, gam.optim, gam.F
local here = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.'
-- the library, with engine/gam_test.h's host-scalar forms declared
local C = dofile(here .. '/../gam_test.lua')
local H = dofile(here .. '/helpers.lua')
local DEV, close = H.DEV, H.close
local DEVICE = DEV == 'cuda' and C.GAM_CUDA or C.GAM_CPU

H.require_device('tests/cuda/optim_cuda.lua')

local VEC_TOL = 1e-6      -- one elementwise pass: float rounding (fused multiply-adds)
local SUM_TOL = 1e-10     -- reductions in double: only the order of the additions differs
local STEP_TOL = 1e-4     -- whole steps (forward, backward, optimiser) over a few steps

local function ok(rc) assert.are.equal(0, rc, rc ~= 0 and ffi.string(C.gam_last_error()) or nil) end

local function randvec(n, seed, lo, hi)
  gam.manual_seed(seed)
  return gam.rand({n}, {low = lo or -1, high = hi or 1})
end

local function num_close(a, b, tol, what)
  local e = math.abs(a - b) / math.max(math.abs(a), 1e-300)
  assert(e <= tol, string.format('%s: %.17g on the device, %.17g on the cpu (relative %.3g)', what, b, a, e))
end

local function block(device)
  local out = ffi.new('gam_tensor*[1]')
  ok(C.gam_opt_scalars(out, device))
  return require('gam.tensor').wrap(out[0])
end

local function read(s)
  local h = ffi.new('double[?]', C.GAM_OPT_NSCALARS)
  ok(C.gam_opt_read(s.t, h))
  return h
end

describe('fused optimiser kernels on ' .. DEV, function()
  for _, n in ipairs {1, 5, 1000003} do
    it('every host-scalar pass matches the cpu, n = ' .. n, function()
      local g, w, g0, hp = randvec(n, 1), randvec(n, 2), randvec(n, 3), randvec(n, 4)
      local dg, dw, dg0, dhp = g:to(DEV), w:to(DEV), g0:to(DEV), hp:to(DEV)
      local a, b = ffi.new('double[3]'), ffi.new('double[3]')
      for _, wt in ipairs {false, true} do
        ok(C.gam_opt_norm(a, g.t, wt and w.t or nil))
        ok(C.gam_opt_norm(b, dg.t, wt and dw.t or nil))
        num_close(a[0], b[0], SUM_TOL, 'norm')
      end
      ok(C.gam_opt_dot3(a, g.t, w.t))
      ok(C.gam_opt_dot3(b, dg.t, dw.t))
      for k = 0, 2 do num_close(a[k], b[k], SUM_TOL, 'dot3 ' .. k) end
      for _, ad in ipairs {0, 1} do
        local t1, t2 = w:clone(), dw:clone()
        local s1, s2, q1, q2 = g:clone(), dg:clone(), g:clone(), dg:clone()
        ok(C.gam_opt_ascend(t1.t, s1.t, g.t, q1.t, 0.037, ad))
        ok(C.gam_opt_ascend(t2.t, s2.t, dg.t, q2.t, 0.037, ad))
        close(t1, t2, 'ascend', VEC_TOL)
        close(s1, s2, 'ascend theta copy', nil, true)
        close(q1, q2, 'ascend g copy', nil, true)
        local h1, h2 = hp:clone(), dhp:clone()
        ok(C.gam_gam_pass1(a, h1.t, g.t, g0.t, w.t, 0.3, ad))
        ok(C.gam_gam_pass1(b, h2.t, dg.t, dg0.t, dw.t, 0.3, ad))
        num_close(a[0], b[0], SUM_TOL, 'pass1 norm')
        close(h1, h2, 'pass1 h+', VEC_TOL)
        local p1, p2 = g:clone(), dg:clone()
        ok(C.gam_gam_ascend_h0(p1.t, w.t, g.t, g0.t, 0.2, ad))
        ok(C.gam_gam_ascend_h0(p2.t, dw.t, dg.t, dg0.t, 0.2, ad))
        close(p1, p2, 'ascend_h0', VEC_TOL)
        local m1, m2 = g0:clone(), dg0:clone()
        ok(C.gam_gam_pass2(a, m1.t, g.t, w.t, 0.9, 0.1, ad))
        ok(C.gam_gam_pass2(b, m2.t, dg.t, dw.t, 0.9, 0.1, ad))
        num_close(a[0], b[0], SUM_TOL, 'pass2 norm')
        close(m1, m2, 'pass2 h-', VEC_TOL)
      end
      local x1, x2 = g:clone(), dg:clone()
      ok(C.gam_gam_pass3(a, x1.t, hp.t, g0.t, 0.7))
      ok(C.gam_gam_pass3(b, x2.t, dhp.t, dg0.t, 0.7))
      for k = 0, 2 do num_close(a[k], b[k], SUM_TOL, 'pass3 ' .. k) end
      close(x1, x2, 'pass3 g', VEC_TOL)
      local d1, d2 = g:clone(), dg:clone()
      ok(C.gam_opt_decompose(d1.t, g0.t, 0.4, 0.6))
      ok(C.gam_opt_decompose(d2.t, dg0.t, 0.4, 0.6))
      close(d1, d2, 'decompose', VEC_TOL)
      local c1, c2 = gam.zeros({n}), gam.zeros({n}, {device = DEV})
      ok(C.gam_opt_copy(c1.t, g.t))
      ok(C.gam_opt_copy(c2.t, dg.t))
      close(c1, c2, 'copy', nil, true)
    end)

    it('SGD (every variant), Adam and AdamW steps match the cpu, n = ' .. n, function()
      local p, g, src = randvec(n, 5), randvec(n, 6), randvec(n, 7)
      local variants = {{0.9, 0, 0, 1}, {0.9, 0, 0, 0}, {0.9, 0, 1, 0}, {0.9, 0, 1, 1}, {0.9, 0.3, 0, 0},
                        {0, 0, 0, 1}}
      for _, v in ipairs(variants) do
        for _, use_src in ipairs {false, true} do
          local what = string.format('sgd momentum %g dampening %g nesterov %d first %d src %s', v[1], v[2], v[3],
                                     v[4], tostring(use_src))
          local p1, p2 = p:clone(), p:to(DEV):clone()
          local b1, b2 = randvec(n, 8), randvec(n, 8):to(DEV)
          ok(C.gam_sgd_step(p1.t, g.t, b1.t, use_src and src.t or nil, 0.1, v[1], v[2], 5e-4, v[3], v[4]))
          ok(C.gam_sgd_step(p2.t, g:to(DEV).t, b2.t, use_src and src:to(DEV).t or nil, 0.1, v[1], v[2], 5e-4,
                            v[3], v[4]))
          close(p1, p2, what, VEC_TOL)
          close(b1, b2, what .. ' buffer', VEC_TOL)
        end
      end
      for _, dec in ipairs {0, 1} do
        local p1, p2 = p:clone(), p:to(DEV):clone()
        local m1, m2 = randvec(n, 9, -0.1, 0.1), randvec(n, 9, -0.1, 0.1):to(DEV)
        local v1, v2 = randvec(n, 10, 0, 0.01), randvec(n, 10, 0, 0.01):to(DEV)
        ok(C.gam_adam_step(p1.t, g.t, m1.t, v1.t, src.t, 1e-3, 0.9, 0.999, 1e-8, 1e-2, dec, 7))
        ok(C.gam_adam_step(p2.t, g:to(DEV).t, m2.t, v2.t, src:to(DEV).t, 1e-3, 0.9, 0.999, 1e-8, 1e-2, dec, 7))
        close(p1, p2, 'adam decoupled ' .. dec, VEC_TOL)
        close(m1, m2, 'adam exp_avg', VEC_TOL)
        close(v1, v2, 'adam exp_avg_sq', VEC_TOL)
      end
    end)
  end

  it('reductions give the same bits every time', function()
    local g = randvec(3000017, 11):to(DEV)
    local a = ffi.new('double[3]')
    ok(C.gam_opt_norm(a, g.t, nil))
    local first = a[0]
    for _ = 1, 4 do
      ok(C.gam_opt_norm(a, g.t, nil))
      assert.are.equal(first, a[0])
    end
  end)
end)

describe('the scalars block on ' .. DEV, function()
  local n = 200003

  it('the _s forms match the cpu, their coefficients read from the block on the device', function()
    local g, w, g0, hp = randvec(n, 1), randvec(n, 2), randvec(n, 3), randvec(n, 4)
    local sc, sd = block(C.GAM_CPU), block(DEVICE)
    local dg, dw, dg0, dhp = g:to(DEV), w:to(DEV), g0:to(DEV), hp:to(DEV)
    ok(C.gam_opt_norm_s(sc.t, g.t, w.t, 1))
    ok(C.gam_opt_norm_s(sd.t, dg.t, dw.t, 1))
    num_close(read(sc)[0], read(sd)[0], SUM_TOL, 'norm_s')
    for _, ad in ipairs {0, 1} do
      local t1, t2 = w:clone(), dw:clone()
      ok(C.gam_opt_ascend_s(t1.t, nil, g.t, nil, 0.05, sc.t, ad))
      ok(C.gam_opt_ascend_s(t2.t, nil, dg.t, nil, 0.05, sd.t, ad))
      close(t1, t2, 'ascend_s', VEC_TOL)
      local p1, p2 = w:clone(), dw:clone()
      ok(C.gam_gam_ascend_h0_s(p1.t, w.t, g.t, g0.t, 0.2, sc.t, ad))
      ok(C.gam_gam_ascend_h0_s(p2.t, dw.t, dg.t, dg0.t, 0.2, sd.t, ad))
      close(p1, p2, 'ascend_h0_s', VEC_TOL)
    end
    local h1, h2 = hp:clone(), dhp:clone()
    ok(C.gam_gam_pass1_s(sc.t, h1.t, g.t, g0.t, w.t, 0.1, 0, 2))
    ok(C.gam_gam_pass1_s(sd.t, h2.t, dg.t, dg0.t, dw.t, 0.1, 0, 2))
    num_close(read(sc)[0], read(sd)[0], SUM_TOL, 'pass1_s')
    local m1, m2 = g0:clone(), dg0:clone()
    ok(C.gam_gam_pass2_s(sc.t, m1.t, g.t, w.t, 1, 0.9, 1, 3))
    ok(C.gam_gam_pass2_s(sd.t, m2.t, dg.t, dw.t, 1, 0.9, 1, 3))
    num_close(read(sc)[0], read(sd)[0], SUM_TOL, 'pass2_s')
    local x1, x2 = g:clone(), dg:clone()
    ok(C.gam_gam_pass3_s(sc.t, x1.t, hp.t, g0.t, 0.9, 4, 5))
    ok(C.gam_gam_pass3_s(sd.t, x2.t, dhp.t, dg0.t, 0.9, 4, 5))
    local hc, hd = read(sc), read(sd)
    for k = 0, 2 do num_close(hc[k], hd[k], SUM_TOL, 'pass3_s ' .. k) end
    local d1, d2 = x1:clone(), x2:clone()
    ok(C.gam_opt_decompose_s(d1.t, g0.t, 0.05, sc.t))
    ok(C.gam_opt_decompose_s(d2.t, dg0.t, 0.05, sd.t))
    close(d1, d2, 'decompose_s', VEC_TOL)
    ok(C.gam_opt_dot3_s(sc.t, g.t, g0.t, 6, 7))
    ok(C.gam_opt_dot3_s(sd.t, dg.t, dg0.t, 6, 7))
    hc, hd = read(sc), read(sd)
    for k = 0, 2 do num_close(hc[k], hd[k], SUM_TOL, 'dot3_s ' .. k) end
    assert.are.equal(0, hd[C.GAM_OPT_FLAG])
  end)

  it('records the first non-finite result on the device and guards the base steps', function()
    local s = block(DEVICE)
    local g = randvec(1000, 1):to(DEV)
    local bad = randvec(1000, 1)
    bad:narrow(1, 500, 1):fill_(0 / 0)
    bad = bad:to(DEV)
    ok(C.gam_opt_norm_s(s.t, g.t, nil, 9))
    assert.are.equal(0, read(s)[C.GAM_OPT_FLAG])
    ok(C.gam_opt_norm_s(s.t, bad.t, nil, 10))
    ok(C.gam_opt_check_loss(s.t, gam.tensor(math.huge):to(DEV).t, 11, 1))
    local h = read(s)
    assert.are.equal(10, h[C.GAM_OPT_FLAG])
    assert.is_true(h[C.GAM_OPT_BAD] ~= h[C.GAM_OPT_BAD])
    assert.are.equal(math.huge, h[C.GAM_OPT_LOSS])
    -- guarded: param = src, state untouched
    local p, src, buf = randvec(1000, 2):to(DEV), randvec(1000, 3):to(DEV), randvec(1000, 4):to(DEV)
    local buf0 = buf:tolist()
    ok(C.gam_sgd_step_s(p.t, g.t, buf.t, src.t, 0.1, 0.9, 0, 0, 0, 0, s.t))
    assert.are.same(src:tolist(), p:tolist())
    assert.are.same(buf0, buf:tolist())
    local m, v = randvec(1000, 5):to(DEV), randvec(1000, 6, 0, 1):to(DEV)
    local m0, v0 = m:tolist(), v:tolist()
    p = randvec(1000, 2):to(DEV)
    ok(C.gam_adam_step_s(p.t, g.t, m.t, v.t, src.t, 1e-3, 0.9, 0.999, 1e-8, 0, 0, 4, s.t))
    assert.are.same(src:tolist(), p:tolist())
    assert.are.same(m0, m:tolist())
    assert.are.same(v0, v:tolist())
    ok(C.gam_opt_clear(s.t))
    assert.are.equal(0, read(s)[C.GAM_OPT_FLAG])
  end)

  it('refuses a block on another device than the vectors', function()
    if DEV == 'cpu' then return end
    local g = randvec(10, 1):to(DEV)
    assert.are.equal(-1, C.gam_opt_norm_s(block(C.GAM_CPU).t, g.t, nil, 0))
    H.contains(ffi.string(C.gam_last_error()), 'opt_norm', 'scalars block is on cpu', 'vectors on cuda')
  end)
end)

-- ---- whole steps --------------------------------------------------------------------------
local function mlp()
  gam.manual_seed(17)
  return nn.Sequential{nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 5)}
end

local function cnn()
  gam.manual_seed(17)
  return nn.Sequential{nn.Conv2d(3, 8, 3, {padding = 1, bias = false}), nn.BatchNorm2d(8), nn.ReLU(),
                       nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, {padding = 1}), nn.BatchNorm2d(8), nn.ReLU(),
                       nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)}
end

local function loss_fn(pred, y) return F.smooth_cross_entropy(pred, y, 0.1):mean() end

local function make(kind, model, base_kind, adaptive)
  local params = model:parameters()
  local base
  if base_kind == 'adam' then base = optim.Adam{params = params, lr = 1e-3, weight_decay = 1e-4}
  elseif base_kind == 'adamw' then base = optim.AdamW{params = params, lr = 1e-3}
  else base = optim.SGD{params = params, lr = 0.05, momentum = 0.9, weight_decay = 5e-4, nesterov = true} end
  if kind == 'sgd' then return base end
  if kind == 'sam' then return optim.SAM{base = base, model = model, rho = 0.05, adaptive = adaptive} end
  if kind == 'gsam' then return optim.GSAM{base = base, model = model, rho = 0.05, alpha = 0.4, adaptive = adaptive} end
  return optim.GAM{base = base, model = model, grad_rho = 0.03, grad_norm_rho = 0.2, alpha = 0.1, beta = 0.1,
                   gamma = 0.05, adaptive = adaptive}
end

-- states of a model by name (cpu tensors)
local function state(model)
  local r = {}
  for _, e in ipairs(model:named_parameters()) do r[e.name] = e.tensor:to('cpu') end
  for _, e in ipairs(model:named_buffers()) do r[e.name] = e.tensor:to('cpu') end
  return r
end

describe('GAM, SAM and GSAM steps on ' .. DEV .. ' against the cpu', function()
  local configs = {
    {'gam', 'mlp', 'sgd'}, {'sam', 'mlp', 'sgd'}, {'gsam', 'mlp', 'sgd'}, {'gam', 'mlp', 'adamw'},
    {'gam', 'mlp', 'adam', true}, {'sam', 'mlp', 'sgd', true}, {'gam', 'cnn', 'sgd'}, {'sam', 'cnn', 'sgd'},
    {'gsam', 'cnn', 'adamw', true}, {'sgd', 'cnn', 'sgd'},
  }
  for _, cfg in ipairs(configs) do
    local kind, net, base_kind, adaptive = cfg[1], cfg[2], cfg[3], cfg[4] or false
    local tag = string.format('%s on a %s, base %s%s', kind, net, base_kind, adaptive and ', adaptive' or '')
    it(tag .. ': parameters, BatchNorm buffers, losses and predictions', function()
      local models, opts, losses, preds = {}, {}, {}, {}
      gam.manual_seed(23)
      local x = net == 'cnn' and gam.randn({6, 3, 8, 8}) or gam.randn({16, 10})
      local y = gam.randint(0, 5, {x:size(1)})
      for _, dev in ipairs {'cpu', DEV} do
        local m = (net == 'cnn' and cnn() or mlp()):to(dev)
        m:flat_parameters()
        models[dev], opts[dev], losses[dev], preds[dev] = m, make(kind, m, base_kind, adaptive), {}, {}
      end
      for step = 1, 3 do
        for _, dev in ipairs {'cpu', DEV} do
          local xd, yd = x:to(dev), y:to(dev)
          local opt = opts[dev]
          if kind == 'sgd' then
            opt:zero_grad()
            local l = gam.scope(function()
              local l = loss_fn(models[dev](xd), yd)
              l:backward()
              return l:item()
            end)
            opt:step()
            losses[dev][step] = l
          else
            opt:set_closure(loss_fn, xd, yd)
            local pred, loss = opt:step()
            assert.are.equal('number', type(loss))
            assert.are.equal(dev, pred:device())
            losses[dev][step], preds[dev][step] = loss, gam.keep(pred)
          end
        end
        num_close(losses.cpu[step], losses[DEV][step], STEP_TOL, tag .. ' loss ' .. step)
        if preds.cpu[step] then close(preds.cpu[step], preds[DEV][step], tag .. ' prediction ' .. step, STEP_TOL) end
        local a, b = state(models.cpu), state(models[DEV])
        for name, t in pairs(a) do close(t, b[name]:to(DEV), tag .. ' step ' .. step .. ' ' .. name, STEP_TOL) end
      end
    end)
  end

  it('a failing step on the device names the pass and leaves parameters and base state as before', function()
    for _, cfg in ipairs {{'gam', 2, 'loss'}, {'gam', 3, 'grad'}, {'sam', 1, 'grad'}, {'gsam', 1, 'loss'},
                          {'gam', 0, 'loss'}, {'gam', 1, 'grad'}} do
      local kind, bad_pass, what = cfg[1], cfg[2], cfg[3]
      local m = cnn():to(DEV)
      local opt = make(kind, m, 'sgd')
      local _, flat_grad = m:flat_parameters()
      gam.manual_seed(1)
      local x, y = gam.randn({4, 3, 8, 8}):to(DEV), gam.randint(0, 5, {4}):to(DEV)
      opt:set_closure(loss_fn, x, y)
      opt:step()                                     -- one good step: the base state exists
      local base = opt.base
      local before = state(m)
      local steps_before = base.state.steps[1]
      local mom_before = base:state_dict().state[1].momentum_buffer:to('cpu')
      local pass = 0
      local ok_, err = pcall(opt.step, opt, function()
        local pred = m(x)
        local loss = loss_fn(pred, y)
        loss:backward()
        local k = pass
        pass = pass + 1
        if k == bad_pass then
          if what == 'loss' then return pred, loss * (0 / 0) end   -- a non-finite loss tensor on the device
          flat_grad:fill_(math.huge)
        end
        return pred, loss
      end)
      assert.is_false(ok_, kind .. ' should fail')
      local name = ({gam = 'GAM', sam = 'SAM', gsam = 'GSAM'})[kind]
      assert.matches(name .. ': pass ' .. bad_pass, err)
      assert.matches(what == 'loss' and 'non%-finite loss' or 'non%-finite', err)
      local after = state(m)
      for _, e in ipairs(m:named_parameters()) do
        close(before[e.name], after[e.name]:to(DEV), kind .. ' ' .. e.name .. ' restored', nil, true)
      end
      assert.are.equal(steps_before, base.state.steps[1])
      close(mom_before, base:state_dict().state[1].momentum_buffer, 'momentum untouched', nil, true)
      assert.are.equal(0.1, m:get(2).momentum)
      opt:set_closure(loss_fn, x, y)
      local _, l = opt:step()                        -- and it still works
      assert.is_true(l == l)
    end
  end)

  it('keeps its work buffers and base state on the device', function()
    local m = mlp():to(DEV)
    local opt = make('gam', m, 'sgd')
    gam.manual_seed(2)
    opt:set_closure(loss_fn, gam.randn({4, 10}):to(DEV), gam.randint(0, 5, {4}):to(DEV))
    opt:step()
    for _, b in ipairs(opt._bufs) do assert.are.equal(DEV, b:device()) end
    assert.are.equal(DEV, opt.base._bufs[1]:device())
    assert.are.equal(DEV, opt._S:device())
  end)

  it('an out-of-range target in a step is reported at its one read; the parameters are kept', function()
    if DEV == 'cpu' then return end
    for _, kind in ipairs {'gam', 'sam'} do
      local m = mlp():to(DEV)
      local opt = make(kind, m, 'sgd')
      local before = state(m)
      gam.manual_seed(3)
      local x = gam.randn({4, 10}):to(DEV)
      opt:set_closure(loss_fn, x, gam.tensor({1, 2, 7, 0}, {dtype = 'int64'}):to(DEV))
      local w0 = gam.cuda_host_waits()
      local stepped, err = pcall(opt.step, opt)
      local waits = gam.cuda_host_waits() - w0
      assert.is_false(stepped)
      err = tostring(err)
      assert.truthy(err:find('cross_entropy: target 7 of sample 3 is outside the classes [0, 5)', 1, true), err)
      assert.are.equal(1, waits, kind .. ': the failed step waited ' .. waits .. ' times')
      for name, t in pairs(state(m)) do close(before[name], t:to(DEV), kind .. ' ' .. name .. ' kept', nil, true) end
      -- good targets: it steps, waiting once
      opt:set_closure(loss_fn, x, gam.randint(0, 5, {4}):to(DEV))
      w0 = gam.cuda_host_waits()
      opt:step()
      assert.are.equal(1, gam.cuda_host_waits() - w0, kind .. ': a step waits once')
    end
    -- outside an optimiser step the check waits and fails at once
    local e = H.errmsg(F.cross_entropy, gam.randn({2, 5}):to(DEV), gam.tensor({0, 9}, {dtype = 'int64'}):to(DEV))
    assert.truthy(e:find('cross_entropy: target 9 of sample 2 is outside the classes [0, 5)', 1, true), e)
  end)
end)
