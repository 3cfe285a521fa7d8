-- The optimiser passes with device-resident scalars (the _s forms of gam.h,
-- engine/optim.c), on the cpu: they give bit for bit what the host-scalar
-- forms give with the coefficients computed in Lua (as the optimisers did
-- before), record the first non-finite check in the block's flag, and the
-- guarded base steps only restore the parameters when it is set. The GAM,
-- SAM and GSAM steps built on them equal a step chained from the host-scalar
-- forms, bit for bit. (Their cuda twins are tested in tests/cuda/.)
local ffi = require 'ffi'
local gam = require 'gam'
-- the library, with engine/gam_test.h's host-scalar forms declared
local C = dofile((debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.') .. '/gam_test.lua')
local nn, optim, F = gam.nn, gam.optim, gam.F

local XI = require('gam.optim.util').XI   -- ξ: the Lua side's one definition
local FLAG, BAD, LOSS = C.GAM_OPT_FLAG, C.GAM_OPT_BAD, C.GAM_OPT_LOSS

local function randvec(n, seed, lo, hi)
  gam.manual_seed(seed)
  return gam.rand({n}, {low = lo or -1, high = hi or 1})
end

local function block()
  local out = ffi.new('gam_tensor*[1]')
  assert.are.equal(0, C.gam_opt_scalars(out, C.GAM_CPU))
  return gam.wrap and gam.wrap(out[0]) or require('gam.tensor').wrap(out[0])
end

local function read(s)
  local h = ffi.new('double[?]', C.GAM_OPT_NSCALARS)
  assert.are.equal(0, C.gam_opt_read(s.t, h))
  return h
end

local function ok(rc) assert.are.equal(0, rc, rc ~= 0 and ffi.string(C.gam_last_error()) or nil) end

local function same(a, b, what)
  assert.are.same(a:tolist(), b:tolist(), what)
end

describe('optimiser scalars block', function()
  local n = 70001

  it('norm, dot3 and the GAM reductions write the values of the host forms', function()
    local s = block()
    local g, w, g0, hp = randvec(n, 1), randvec(n, 2), randvec(n, 3), randvec(n, 4)
    local d = ffi.new('double[3]')
    ok(C.gam_opt_norm(d, g.t, w.t))
    ok(C.gam_opt_norm_s(s.t, g.t, w.t, 0))
    assert.are.equal(d[0], read(s)[0])
    ok(C.gam_opt_dot3(d, g.t, w.t))
    ok(C.gam_opt_dot3_s(s.t, g.t, w.t, 0, 0))
    local h = read(s)
    assert.are.same({d[0], d[1], d[2]}, {h[0], h[1], h[2]})
    for _, ad in ipairs {0, 1} do
      local a1, a2 = hp:clone(), hp:clone()
      ok(C.gam_gam_pass1(d, a1.t, g.t, g0.t, w.t, 0.3, ad))
      ok(C.gam_gam_pass1_s(s.t, a2.t, g.t, g0.t, w.t, 0.3, ad, 0))
      assert.are.equal(d[0], read(s)[0])
      same(a1, a2, 'pass1 h+')
      local m1, m2 = g0:clone(), g0:clone()
      ok(C.gam_gam_pass2(d, m1.t, g.t, w.t, 0.9, 0.1, ad))
      ok(C.gam_gam_pass2_s(s.t, m2.t, g.t, w.t, 0.9, 0.1, ad, 0))
      assert.are.equal(d[0], read(s)[0])
      same(m1, m2, 'pass2 h-')
    end
    local g1, g2 = g:clone(), g:clone()
    ok(C.gam_gam_pass3(d, g1.t, hp.t, g0.t, 0.7))
    ok(C.gam_gam_pass3_s(s.t, g2.t, hp.t, g0.t, 0.7, 0, 0))
    h = read(s)
    assert.are.same({d[0], d[1], d[2]}, {h[0], h[1], h[2]})
    same(g1, g2, 'pass3 g')
  end)

  it('passes take rho / (s[0] + ξ) and the decomposition coefficient from the block, as Lua did', function()
    local s = block()
    local g, w, g0 = randvec(n, 5), randvec(n, 6), randvec(n, 7)
    ok(C.gam_opt_norm_s(s.t, g.t, nil, 0))
    local norm = read(s)[0]
    for _, ad in ipairs {0, 1} do
      local t1, t2, ts1, ts2, gs1, gs2 = w:clone(), w:clone(), g:clone(), g:clone(), g:clone(), g:clone()
      ok(C.gam_opt_ascend(t1.t, ts1.t, g.t, gs1.t, 0.05 / (norm + XI), ad))
      ok(C.gam_opt_ascend_s(t2.t, ts2.t, g.t, gs2.t, 0.05, s.t, ad))
      same(t1, t2, 'ascend')
      same(ts1, ts2, 'ascend theta copy')
      same(gs1, gs2, 'ascend g copy')
      local h1, h2 = g:clone(), g:clone()
      ok(C.gam_gam_ascend_h0(h1.t, w.t, g.t, g0.t, 0.2 / (norm + XI), ad))
      ok(C.gam_gam_ascend_h0_s(h2.t, w.t, g.t, g0.t, 0.2, s.t, ad))
      same(h1, h2, 'ascend_h0')
    end
    -- decomposition: c = cos ‖v‖ / (‖h‖ + ξ) from {‖h‖², ⟨h,v⟩, ‖v‖²}
    ok(C.gam_opt_dot3_s(s.t, g.t, g0.t, 0, 0))
    local h = read(s)
    local nh, nv = math.sqrt(h[0]), math.sqrt(h[2])
    local cos = h[1] / (nh * nv + XI)
    local a, b = g:clone(), g:clone()
    ok(C.gam_opt_decompose(a.t, g0.t, 0.4, cos * nv / (nh + XI)))
    ok(C.gam_opt_decompose_s(b.t, g0.t, 0.4, s.t))
    same(a, b, 'decompose')
  end)

  it('records the first non-finite check (code and value) and keeps it until cleared', function()
    local s = block()
    local g = randvec(100, 1)
    ok(C.gam_opt_norm_s(s.t, g.t, nil, 9))
    assert.are.equal(0, read(s)[FLAG])              -- finite: nothing recorded
    local bad = g:clone()
    bad:narrow(1, 7, 1):fill_(math.huge)
    ok(C.gam_opt_norm_s(s.t, bad.t, nil, 0))         -- code 0: not checked
    assert.are.equal(0, read(s)[FLAG])
    ok(C.gam_opt_norm_s(s.t, bad.t, nil, 11))
    local h = read(s)
    assert.are.equal(11, h[FLAG])
    assert.are.equal(math.huge, h[BAD])
    assert.are.equal(math.huge, h[0])
    ok(C.gam_opt_dot3_s(s.t, bad.t, g.t, 12, 13))    -- a later failure does not overwrite
    assert.are.equal(11, read(s)[FLAG])
    ok(C.gam_opt_clear(s.t))
    h = read(s)
    for k = 0, C.GAM_OPT_NSCALARS - 1 do assert.are.equal(0, h[k]) end
    -- dot3 checks √s0 with its first code, then √s2 with its second
    ok(C.gam_opt_dot3_s(s.t, g.t, bad.t, 12, 13))
    assert.are.equal(13, read(s)[FLAG])
    -- losses: kept on request, checked
    ok(C.gam_opt_clear(s.t))
    ok(C.gam_opt_check_loss(s.t, gam.tensor(2.5).t, 1, 1))
    h = read(s)
    assert.are.equal(2.5, h[LOSS])
    assert.are.equal(0, h[FLAG])
    ok(C.gam_opt_check_loss(s.t, gam.tensor(0 / 0).t, 17, 0))
    h = read(s)
    assert.are.equal(17, h[FLAG])
    assert.is_true(h[BAD] ~= h[BAD])
    assert.are.equal(2.5, h[LOSS])                   -- not kept: unchanged
  end)

  it('guarded base steps: normal without a flag, only param = src with it', function()
    local s = block()
    local p, g, src = randvec(n, 1), randvec(n, 2), randvec(n, 3)
    for _, kind in ipairs {'sgd', 'adam'} do
      local function step(param, bufs, guard, use_src)
        if kind == 'sgd' then
          return C.gam_sgd_step_s(param.t, g.t, bufs[1].t, use_src and src.t or nil, 0.1, 0.9, 0, 1e-4, 1, 0,
                                  guard and guard.t or nil)
        end
        return C.gam_adam_step_s(param.t, g.t, bufs[1].t, bufs[2].t, use_src and src.t or nil, 1e-3, 0.9,
                                 0.999, 1e-8, 1e-2, 1, 3, guard and guard.t or nil)
      end
      local function fresh() return {randvec(n, 4, 0, 1), randvec(n, 5, 0, 1)} end
      -- no flag: the same as the plain step
      local p1, p2, b1, b2 = p:clone(), p:clone(), fresh(), fresh()
      if kind == 'sgd' then
        ok(C.gam_sgd_step(p1.t, g.t, b1[1].t, src.t, 0.1, 0.9, 0, 1e-4, 1, 0))
      else
        ok(C.gam_adam_step(p1.t, g.t, b1[1].t, b1[2].t, src.t, 1e-3, 0.9, 0.999, 1e-8, 1e-2, 1, 3))
      end
      ok(step(p2, b2, s, true))
      same(p1, p2, kind .. ' unflagged')
      same(b1[1], b2[1], kind .. ' unflagged state')
      -- flag set: param = src, state untouched; without src nothing changes
      ok(C.gam_opt_norm_s(s.t, gam.tensor({0 / 0}).t, nil, 5))
      local p3, b3, before = p:clone(), fresh(), fresh()
      ok(step(p3, b3, s, true))
      same(p3, src, kind .. ' flagged: restored to src')
      same(b3[1], before[1], kind .. ' flagged: state untouched')
      same(b3[2], before[2], kind .. ' flagged: state untouched')
      local p4 = p:clone()
      ok(step(p4, fresh(), s, false))
      same(p4, p, kind .. ' flagged without src: unchanged')
      ok(C.gam_opt_clear(s.t))
    end
  end)

  it('refuses what is not a scalars block, with a clear error', function()
    local g = randvec(10, 1)
    assert.are.equal(-1, C.gam_opt_norm_s(gam.zeros({8}).t, g.t, nil, 0))
    assert.truthy(ffi.string(C.gam_last_error()):find('scalars block', 1, true))
    assert.are.equal(-1, C.gam_opt_read(gam.zeros({3}, {dtype = 'int64'}).t, ffi.new('double[8]')))
    assert.truthy(ffi.string(C.gam_last_error()):find('gam_opt_scalars', 1, true))
    assert.are.equal(-1, C.gam_opt_check_loss(block().t, gam.zeros({2}).t, 1, 1))
    assert.truthy(ffi.string(C.gam_last_error()):find('loss must be a scalar', 1, true))
  end)
end)

-- ---- whole steps against a chain of host-scalar passes -----------------------------------
local function mlp()
  gam.manual_seed(11)
  return nn.Sequential{nn.Linear(7, 9), nn.ReLU(), nn.Linear(9, 4)}
end

local function loss_fn(pred, y) return F.smooth_cross_entropy(pred, y, 0.1):mean() end

-- one step of kind on the model with the host-scalar forms, as the optimisers computed it
-- before the scalars block (SGD base, momentum 0.9, wd 5e-4, lr 0.1)
local function host_step(kind, model, x, y, state)
  local flat, grad = model:flat_parameters()
  local n = flat:numel()
  state.bufs = state.bufs or {gam.keep(gam.zeros({n})), gam.keep(gam.zeros({n})), gam.keep(gam.zeros({n}))}
  state.mom = state.mom or gam.keep(gam.zeros({n}))
  state.steps = (state.steps or 0) + 1
  local theta0, g0, hplus = state.bufs[1], state.bufs[2], state.bufs[3]
  local s = ffi.new('double[3]')
  local function pass()
    grad:fill_(0)
    gam.scope(function() loss_fn(model(x), y):backward() end)
  end
  local t, g = flat.t, grad.t
  pass()
  if kind == 'sam' then
    ok(C.gam_opt_norm(s, g, nil))
    ok(C.gam_opt_ascend(t, theta0.t, g, nil, 0.05 / (s[0] + XI), 0))
    pass()
  elseif kind == 'gsam' then
    ok(C.gam_opt_norm(s, g, nil))
    ok(C.gam_opt_ascend(t, theta0.t, g, g0.t, 0.05 / (s[0] + XI), 0))
    pass()
    ok(C.gam_opt_dot3(s, g, g0.t))
    local ngs, ng = math.sqrt(s[0]), math.sqrt(s[2])
    local cos = s[1] / (ngs * ng + XI)
    ok(C.gam_opt_decompose(g, g0.t, 0.4, cos * ng / (ngs + XI)))
  else
    ok(C.gam_opt_norm(s, g, nil))
    ok(C.gam_opt_ascend(t, theta0.t, g, g0.t, 0.03 / (s[0] + XI), 0))
    pass()
    ok(C.gam_gam_pass1(s, hplus.t, g, g0.t, theta0.t, 0.1, 0))
    ok(C.gam_gam_ascend_h0(t, theta0.t, g, g0.t, 0.2 / (s[0] + XI), 0))
    pass()
    ok(C.gam_gam_pass2(s, g0.t, g, t, 1, 0.9, 0))
    ok(C.gam_opt_ascend(t, nil, g, nil, 0.03 / (s[0] + XI), 0))
    pass()
    ok(C.gam_gam_pass3(s, g, hplus.t, g0.t, 0.9))
    local np, nm = math.sqrt(s[0]), math.sqrt(s[2])
    local cos = s[1] / (np * nm + XI)
    ok(C.gam_opt_decompose(g, g0.t, 0.05, cos * nm / (np + XI)))
  end
  ok(C.gam_sgd_step(t, g, state.mom.t, theta0.t, 0.1, 0.9, 0, 5e-4, 0, state.steps == 1 and 1 or 0))
end

describe('sharpness-aware steps on the scalars block', function()
  it('GAM, SAM and GSAM steps equal the host-scalar chain bit for bit', function()
    gam.manual_seed(5)
    local x, y = gam.randn({6, 7}), gam.randint(0, 4, {6})
    for _, kind in ipairs {'gam', 'sam', 'gsam'} do
      local ma, mb = mlp(), mlp()
      local base = optim.SGD{params = ma:parameters(), lr = 0.1, momentum = 0.9, weight_decay = 5e-4}
      local opt
      if kind == 'gam' then
        opt = optim.GAM{base = base, model = ma, grad_rho = 0.03, grad_norm_rho = 0.2, alpha = 0.1, beta = 0.1,
                        gamma = 0.05}
      elseif kind == 'sam' then
        opt = optim.SAM{base = base, model = ma, rho = 0.05}
      else
        opt = optim.GSAM{base = base, model = ma, rho = 0.05, alpha = 0.4}
      end
      opt:set_closure(loss_fn, x, y)
      local state = {}
      for step = 1, 3 do
        local _, loss = opt:step()
        assert.are.equal('number', type(loss))
        host_step(kind, mb, x, y, state)
        local fa, fb = ma:flat_parameters(), mb:flat_parameters()
        assert.are.same(fb:tolist(), fa:tolist(), kind .. ' step ' .. step)
      end
    end
  end)
end)
