-- Optimisers: the fused kernels against double-precision sums, SGD/Adam/AdamW
-- against PyTorch, the SAM family's properties (GAM α=1, γ=0 is SAM; GSAM α=0
-- is SAM; SAM ρ=0 is its base; paper and reference modes differ only by h−),
-- BatchNorm statistics moving once per step, the non-finite guard, memory,
-- bad hyperparameters, and the schedulers against PyTorch's formulas.
local ffi = require 'ffi'
local gam = require 'gam'
-- the library, with engine/gam_test.h's host-scalar forms declared
local C = dofile((debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.') .. '/gam_test.lua')
local nn, optim, F = gam.nn, gam.optim, gam.F

-- ---- helpers -------------------------------------------------------------------------
local function close(a, b, tol, what)
  local err = math.abs(a - b) / math.max(math.abs(b), 1e-30)
  assert(err <= tol, string.format('%s: %.10g vs %.10g (relative error %.3g > %.3g)', what or 'value', a, b, err, tol))
end

local function lists_close(a, b, tol, what)
  assert.are.equal(#b, #a, (what or 'list') .. ': lengths differ')
  local num, den = 0, 0
  for i = 1, #a do
    num = math.max(num, math.abs(a[i] - b[i]))
    den = math.max(den, math.abs(b[i]))
  end
  local err = den > 0 and num / den or num
  assert(err <= tol, string.format('%s: relative error %.3g > %.3g', what or 'list', err, tol))
end

local function state_of(model)
  local r = {}
  for _, e in ipairs(model:named_parameters()) do r[e.name] = e.tensor:tolist() end
  for _, e in ipairs(model:named_buffers()) do r[e.name] = e.tensor:tolist() end
  return r
end

local function states_close(a, b, tol, what)
  for k, v in pairs(b) do lists_close(a[k], v, tol, (what or '') .. ' ' .. k) end
end

local function mlp(seed)
  gam.manual_seed(seed or 7)
  return nn.Sequential{nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)}
end

local function cnn(seed)
  gam.manual_seed(seed or 7)
  return nn.Sequential{nn.Conv2d(2, 3, 3, {padding = 1, bias = false}), nn.BatchNorm2d(3), nn.ReLU(),
                       nn.MaxPool2d(2), nn.Flatten(), nn.Linear(12, 4)}
end

local function batch(kind, seed)
  gam.manual_seed(seed or 3)
  if kind == 'cnn' then return gam.randn({5, 2, 4, 4}), gam.randint(0, 4, {5}) end
  return gam.randn({5, 6}), gam.randint(0, 3, {5})
end

local function loss_fn(pred, y) return F.smooth_cross_entropy(pred, y, 0.1):mean() end

local function sgd(model, o)
  o = o or {}
  return optim.SGD{params = model:parameters(), lr = o.lr or 0.1, momentum = o.momentum or 0.9,
                   weight_decay = o.weight_decay or 5e-4}
end

-- runs `steps` steps of opt on (x, y); returns the losses
local function train(opt, x, y, steps)
  local losses = {}
  opt:set_closure(loss_fn, x, y)
  for i = 1, steps or 3 do
    local _, loss = opt:step()
    losses[i] = loss
  end
  return losses
end

local function vec(values)
  return gam.tensor(values)
end

local function randvec(n, seed, lo, hi)
  gam.manual_seed(seed)
  return gam.rand({n}, {low = lo or -1, high = hi or 1})
end

-- ---- kernels ---------------------------------------------------------------------------
describe('optimiser kernels', function()
  local n = 100003
  local norm = ffi.new('double[3]')

  it('norm accumulates in double, with and without |w| scaling', function()
    local g, w = randvec(n, 1), randvec(n, 2)
    local gl, wl = g:tolist(), w:tolist()
    local s, sw = 0, 0
    for i = 1, n do s = s + gl[i] * gl[i]; sw = sw + (gl[i] * math.abs(wl[i])) ^ 2 end
    assert.are.equal(0, C.gam_opt_norm(norm, g.t, nil))
    close(norm[0], math.sqrt(s), 1e-12, 'norm')
    assert.are.equal(0, C.gam_opt_norm(norm, g.t, w.t))
    close(norm[0], math.sqrt(sw), 1e-12, 'adaptive norm')
  end)

  it('ascend perturbs, saves and scales by θ² when adaptive', function()
    local th, g = vec({0.5, -2, 3}), vec({1, 0.5, -0.25})
    local save, gsave = gam.zeros({3}), gam.zeros({3})
    assert.are.equal(0, C.gam_opt_ascend(th.t, save.t, g.t, gsave.t, 0.1, 0))
    lists_close(th:tolist(), {0.6, -1.95, 2.975}, 1e-7, 'plain')
    lists_close(save:tolist(), {0.5, -2, 3}, 0, 'saved θ')
    lists_close(gsave:tolist(), {1, 0.5, -0.25}, 0, 'saved g')
    local th2 = vec({0.5, -2, 3})
    assert.are.equal(0, C.gam_opt_ascend(th2.t, nil, g.t, nil, 0.1, 1))
    lists_close(th2:tolist(), {0.5 + 0.1 * 0.25, -2 + 0.05 * 4, 3 - 0.025 * 9}, 1e-7, 'adaptive')
  end)

  it('dot3 and decompose', function()
    local a, b = randvec(n, 3), randvec(n, 4)
    local al, bl = a:tolist(), b:tolist()
    local aa, ab, bb = 0, 0, 0
    for i = 1, n do aa = aa + al[i] ^ 2; ab = ab + al[i] * bl[i]; bb = bb + bl[i] ^ 2 end
    assert.are.equal(0, C.gam_opt_dot3(norm, a.t, b.t))
    close(norm[0], aa, 1e-12, '‖a‖²'); close(norm[1], ab, 1e-9, '⟨a,b⟩'); close(norm[2], bb, 1e-12, '‖b‖²')
    local h, v = vec({1, 2, 3}), vec({0.5, -1, 2})
    assert.are.equal(0, C.gam_opt_decompose(h.t, v.t, 0.2, 0.3))
    -- h − 0.2 (v − 0.3 h)
    lists_close(h:tolist(), {1 - 0.2 * (0.5 - 0.3), 2 - 0.2 * (-1 - 0.6), 3 - 0.2 * (2 - 0.9)}, 1e-7, 'decompose')
  end)

  it('GAM phase kernels compute h+, h0, h− and the pass-3 sums', function()
    local g1, g0, th0 = vec({1, 2, -1}), vec({0.5, 1, 1}), vec({2, -1, 0.5})
    local hp = gam.zeros({3})
    assert.are.equal(0, C.gam_gam_pass1(norm, hp.t, g1.t, g0.t, th0.t, 0.25, 0))
    lists_close(hp:tolist(), {0.25, 0.5, -0.25}, 1e-7, 'h+ = α g1')
    close(norm[0], math.sqrt(0.25 + 1 + 4), 1e-7, '‖g1 − g0‖')
    assert.are.equal(0, C.gam_gam_pass1(norm, hp.t, g1.t, g0.t, th0.t, 0.25, 1))
    close(norm[0], math.sqrt((0.5 * 2) ^ 2 + 1 + (2 * 0.5) ^ 2), 1e-7, '‖(g1 − g0)⊙|θ0|‖')
    local th = gam.zeros({3})
    assert.are.equal(0, C.gam_gam_ascend_h0(th.t, th0.t, g1.t, g0.t, 0.1, 1))
    lists_close(th:tolist(), {2 + 0.05 * 4, -1 + 0.1, 0.5 - 0.2 * 0.25}, 1e-7, 'θ0 + s h0 θ0²')
    local hm = vec({0.5, 1, 1})   -- g0
    local g2 = vec({1, -1, 2})
    assert.are.equal(0, C.gam_gam_pass2(norm, hm.t, g2.t, th.t, 0.3, 0.7, 0))
    lists_close(hm:tolist(), {0.15 + 0.7, 0.3 - 0.7, 0.3 + 1.4}, 1e-7, 'h− = c0 g0 + c1 g2')
    close(norm[0], math.sqrt(6), 1e-7, '‖g2‖')
    local g3 = vec({2, 0, -2})
    hp = vec({0.25, 0.5, -0.25})
    assert.are.equal(0, C.gam_gam_pass3(norm, g3.t, hp.t, hm.t, 0.75))
    local h = {0.25 + 1.5, 0.5, -0.25 - 1.5}
    lists_close(g3:tolist(), h, 1e-7, 'h+ = h+ + (1−α) g3')
    local m = hm:tolist()
    close(norm[0], h[1] ^ 2 + h[2] ^ 2 + h[3] ^ 2, 1e-6, '‖h+‖²')
    close(norm[1], h[1] * m[1] + h[2] * m[2] + h[3] * m[3], 1e-6, '⟨h+,h−⟩')
  end)

  it('reject wrong sizes, nil vectors and other dtypes with a message', function()
    local a, b = gam.zeros({4}), gam.zeros({5})
    assert.are.equal(-1, C.gam_opt_decompose(a.t, b.t, 1, 1))
    assert.matches('opt_decompose: vertical source has 5 elements', ffi.string(C.gam_last_error()))
    assert.are.equal(-1, C.gam_opt_norm(norm, nil, nil))
    local i = gam.zeros({4}, {dtype = 'int64'})
    assert.are.equal(-1, C.gam_sgd_step(i.t, a.t, nil, nil, 0.1, 0, 0, 0, 0, 1))
    assert.matches('sgd', ffi.string(C.gam_last_error()))
    assert.are.equal(-1, C.gam_sgd_step(a.t, a.t, nil, nil, 0.1, 0.9, 0, 0, 0, 1))
    assert.matches('momentum buffer', ffi.string(C.gam_last_error()))
  end)

  it('span finds the arena and refuses scattered tensors', function()
    local model = mlp()
    model:flat_parameters()
    local ps = model:parameters()
    local arr = ffi.new('gam_tensor*[?]', #ps)
    for i, p in ipairs(ps) do arr[i - 1] = p.t end
    local out = ffi.new('gam_tensor*[1]')
    assert.are.equal(0, C.gam_opt_span(out, arr, #ps))
    assert.is_true(out[0] ~= nil)
    assert.are.equal(83, tonumber(out[0].numel))
    C.gam_release(out[0])
    arr[0], arr[1] = ps[2].t, ps[1].t       -- out of order
    assert.are.equal(0, C.gam_opt_span(out, arr, #ps))
    assert.is_true(out[0] == nil)
  end)
end)

-- ---- base optimisers against PyTorch --------------------------------------------------------
-- Expected values: torch 1.13 (Debian python3-torch) in float64, running the same
-- optimiser on p = {0.5, -1, 2, 0.25} with the three gradients below set by hand.
describe('base optimisers', function()
  local P0 = {0.5, -1.0, 2.0, 0.25}
  local GRADS = {{0.1, -0.2, 0.3, 0.0}, {0.05, 0.4, -0.1, 0.2}, {-0.3, 0.1, 0.2, -0.05}}
  local TORCH = {
    sgd_momentum = {{0.4895, -0.979, 1.968, 0.24975}, {0.47510945, -0.9952189, 1.9464288, 0.231300225},
                    {0.488730356495, -1.01792021299, 1.90726293408, 0.218987257297}},
    sgd_nesterov = {{0.48005, -0.9601, 1.9392, 0.249525}, {0.461132905, -1.01726581, 1.92859552, 0.2108484025},
                    {0.50516341198, -1.050646323961, 1.870132436512, 0.203363425285}},
    sgd_plain = {{0.425, -0.85, 1.75, 0.2375}, {0.37875, -1.0075, 1.7125, 0.125625},
                 {0.5098125, -1.007125, 1.526875, 0.14434375}},
    adam = {{0.490066225166, -0.990033222591, 1.99001996008, 0.240384615385},
            {0.480519342598, -0.991157127976, 1.982257203093, 0.232035429971},
            {0.482250740782, -0.991994441198, 1.973481882713, 0.226806588309}},
    adamw = {{0.487599009901, -0.985049751244, 1.980033222591, 0.24875},
             {0.476070335717, -0.984295718351, 1.966634304838, 0.239802129955},
             {0.477928001429, -0.983898199605, 1.950855826215, 0.2348511557}},
  }
  local MAKE = {
    sgd_momentum = function(ps)
      return optim.SGD{params = ps, lr = 0.1, momentum = 0.9, dampening = 0.1, weight_decay = 0.01}
    end,
    sgd_nesterov = function(ps)
      return optim.SGD{params = ps, lr = 0.1, momentum = 0.9, weight_decay = 0.01, nesterov = true}
    end,
    sgd_plain = function(ps) return optim.SGD{params = ps, lr = 0.5, weight_decay = 0.1} end,
    adam = function(ps)
      return optim.Adam{params = ps, lr = 0.01, betas = {0.8, 0.95}, eps = 1e-3, weight_decay = 0.1}
    end,
    adamw = function(ps)
      return optim.AdamW{params = ps, lr = 0.01, betas = {0.8, 0.95}, eps = 1e-3, weight_decay = 0.5}
    end,
  }

  -- one parameter of 4 values, or (split = true) two parameters of 2 values each
  local function run(name, split)
    local params
    if split then
      params = {gam.tensor({P0[1], P0[2]}):requires_grad_(), gam.tensor({P0[3], P0[4]}):requires_grad_()}
    else
      params = {gam.tensor(P0):requires_grad_()}
    end
    local opt = MAKE[name](params)
    local out = {}
    for s, g in ipairs(GRADS) do
      if split then
        params[1].grad = gam.tensor({g[1], g[2]}); params[2].grad = gam.tensor({g[3], g[4]})
      else
        params[1].grad = gam.tensor(g)
      end
      opt:step()
      local v = {}
      for _, p in ipairs(params) do for _, x in ipairs(p:tolist()) do v[#v + 1] = x end end
      out[s] = v
    end
    return out, opt
  end

  for _, name in ipairs {'sgd_momentum', 'sgd_nesterov', 'sgd_plain', 'adam', 'adamw'} do
    it(name .. ' matches PyTorch over three steps', function()
      for _, split in ipairs {false, true} do
        local got = run(name, split)
        for s = 1, 3 do lists_close(got[s], TORCH[name][s], 1e-6, name .. ' step ' .. s) end
      end
    end)
  end

  it('the flat arena path and the per-tensor path give the same steps', function()
    local m1, m2 = mlp(5), mlp(5)
    m1:flat_parameters()          -- m2 stays scattered
    local x, y = batch('mlp')
    local function go(m, make)
      local opt = make(m:parameters())
      for _ = 1, 3 do
        opt:zero_grad()
        gam.scope(function() loss_fn(m(x), y):backward() end)
        opt:step()
      end
      return state_of(m), opt
    end
    for _, make in ipairs {function(ps) return optim.SGD{params = ps, lr = 0.1, momentum = 0.9, nesterov = true} end,
                           function(ps) return optim.AdamW{params = ps, lr = 0.01} end} do
      local a1, o1 = go(m1, make)
      local a2 = go(m2, make)
      assert.is_truthy(o1:_arena(), 'flattened model should use the arena path')
      states_close(a1, a2, 1e-6, 'arena vs per tensor')
    end
  end)

  it('keeps its state when the parameters move into the arena between steps', function()
    local x, y = batch('mlp')
    local function step(m, opt)
      opt:zero_grad()
      gam.scope(function() loss_fn(m(x), y):backward() end)
      opt:step()
    end
    local m1, m2 = mlp(4), mlp(4)
    m2:flat_parameters()
    local o1 = optim.Adam{params = m1:parameters(), lr = 0.01}
    local o2 = optim.Adam{params = m2:parameters(), lr = 0.01}
    step(m1, o1); step(m2, o2)
    assert.is_nil(o1:_arena())
    m1:flat_parameters()                -- moves params (and state stays laid out alike)
    step(m1, o1); step(m2, o2)
    assert.is_truthy(o1:_arena())
    states_close(state_of(m1), state_of(m2), 1e-6, 'after moving into the arena')
  end)

  it('skips parameters without a gradient outside the arena, as PyTorch', function()
    local a, b = gam.tensor({1, 2}):requires_grad_(), gam.tensor({3}):requires_grad_()
    local opt = optim.SGD{params = {a, b}, lr = 0.5, momentum = 0.9}
    a.grad = gam.tensor({1, 1})
    opt:step()
    lists_close(a:tolist(), {0.5, 1.5}, 1e-7, 'a')
    lists_close(b:tolist(), {3}, 0, 'b untouched')
    assert.are.same({1, 0}, opt.state.steps)
  end)

  it('zero_grad zeroes in place and state_dict/load_state_dict resume exactly', function()
    local x, y = batch('mlp')
    local function steps(model, opt, n)
      for _ = 1, n do
        opt:zero_grad()
        gam.scope(function() loss_fn(model(x), y):backward() end)
        opt:step()
      end
    end
    for _, make in ipairs {function(ps) return optim.SGD{params = ps, lr = 0.1, momentum = 0.9} end,
                           function(ps) return optim.Adam{params = ps, lr = 0.01} end} do
      local m1, m2 = mlp(9), mlp(9)
      m1:flat_parameters()
      local o1 = make(m1:parameters())
      steps(m1, o1, 2)
      -- m2 starts from m1's weights and o1's state
      m2:load_state_dict(m1:state_dict())
      local o2 = make(m2:parameters())
      local sd = o1:state_dict()
      assert.are.equal(2, sd.state[1].step)
      o2:load_state_dict(sd)
      steps(m1, o1, 1)
      steps(m2, o2, 1)
      states_close(state_of(m2), state_of(m1), 1e-6, 'resumed')
      o1:zero_grad()
      for _, p in ipairs(m1:parameters()) do
        for _, v in ipairs(p.grad:tolist()) do assert.are.equal(0, v) end
      end
      assert.has_error(function() o2:load_state_dict({name = 'AdamW', hyper = {}, state = {}}) end)
    end
    -- a plain SGD takes on the momentum (and buffers) of the state it loads
    local m1, m2 = mlp(9), mlp(9)
    local o1 = optim.SGD{params = m1:parameters(), lr = 0.1, momentum = 0.9}
    steps(m1, o1, 2)
    m2:load_state_dict(m1:state_dict())
    local o2 = optim.SGD{params = m2:parameters(), lr = 0.1}
    assert.are.equal(0, o2:state_bytes())
    o2:load_state_dict(o1:state_dict())
    assert.are.equal(0.9, o2.momentum)
    steps(m1, o1, 1)
    steps(m2, o2, 1)
    states_close(state_of(m2), state_of(m1), 1e-6, 'resumed with momentum')
    local bad = o1:state_dict()
    bad.state[2].momentum_buffer = nil
    local ok, err = pcall(o2.load_state_dict, o2, bad)
    assert.is_false(ok)
    assert.matches('state%[2%] has no momentum_buffer', err)
  end)

  it('reads lr from a scheduler at every step', function()
    local p = gam.tensor({1}):requires_grad_()
    local sched = optim.StepLR{base_lr = 1, step_size = 1, gamma = 0.5}
    local opt = optim.SGD{params = {p}, lr = sched}
    p.grad = gam.tensor({1}); opt:step()              -- lr 1
    sched:step(); opt:step()                          -- lr 0.5
    close(p:tolist()[1], 1 - 1 - 0.5, 1e-7, 'p')
    close(opt:get_lr(), 0.5, 0, 'get_lr')
  end)

  it('rejects bad hyperparameters at construction', function()
    local ps = {gam.tensor({1}):requires_grad_()}
    local cases = {
      {function() optim.SGD{params = ps, lr = -0.1} end, 'lr must be >= 0'},
      {function() optim.SGD{params = ps} end, 'lr is required'},
      {function() optim.SGD{lr = 0.1} end, 'params is required'},
      {function() optim.SGD{params = {1, 2}, lr = 0.1} end, 'params%[1%] must be a tensor'},
      {function() optim.SGD{params = ps, lr = 0.1, momentum = -1} end, 'momentum must be >= 0'},
      {function() optim.SGD{params = ps, lr = 0.1, nesterov = true} end, 'nesterov'},
      {function() optim.SGD{params = ps, lr = 0.1, momentun = 0.9} end, "unknown option 'momentun'"},
      {function() optim.SGD{params = {ps[1], ps[1]}, lr = 0.1} end, 'params%[2%] is params%[1%] again'},
      {function() optim.Adam{params = ps, betas = {0.9, 1.5}} end, 'betas%[2%] must be in'},
      {function() optim.AdamW{params = ps, lr = 0 / 0} end, 'lr must be a number'},
      {function() optim.Adam{params = ps, eps = -1} end, 'eps must be >= 0'},
      {function() optim.Adam(nil) end, 'expected a table of options'},
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(c[1])
      assert.is_false(ok)
      assert.matches(c[2], tostring(err))
    end
  end)
end)

-- ---- SAM, GSAM, GAM ------------------------------------------------------------------------
describe('sharpness-aware optimisers', function()
  it('GAM with alpha = 1 and gamma = 0 takes SAM\'s step (rho = grad_rho)', function()
    for _, adaptive in ipairs {false, true} do
      local ma, mb = cnn(), cnn()
      local x, y = batch('cnn')
      local la = train(optim.GAM{base = sgd(ma), model = ma, grad_rho = 0.05, grad_norm_rho = 0.3, alpha = 1,
                                 beta = 0.4, gamma = 0, adaptive = adaptive}, x, y, 3)
      local lb = train(optim.SAM{base = sgd(mb), model = mb, rho = 0.05, adaptive = adaptive}, x, y, 3)
      lists_close(la, lb, 1e-6, 'losses')
      states_close(state_of(ma), state_of(mb), 1e-6, 'GAM vs SAM')
    end
  end)

  it('GSAM with alpha = 0 is SAM', function()
    for _, adaptive in ipairs {false, true} do
      local ma, mb = cnn(), cnn()
      local x, y = batch('cnn')
      train(optim.GSAM{base = sgd(ma), model = ma, rho = 0.1, alpha = 0, adaptive = adaptive}, x, y, 3)
      train(optim.SAM{base = sgd(mb), model = mb, rho = 0.1, adaptive = adaptive}, x, y, 3)
      states_close(state_of(ma), state_of(mb), 1e-6, 'GSAM(0) vs SAM')
    end
  end)

  it('SAM with rho = 0 is its base optimiser', function()
    local ma, mb = cnn(), cnn()
    local x, y = batch('cnn')
    train(optim.SAM{base = sgd(ma), model = ma, rho = 0}, x, y, 3)
    local base = sgd(mb)
    for _ = 1, 3 do
      base:zero_grad()
      gam.scope(function() loss_fn(mb(x), y):backward() end)
      base:step()
    end
    states_close(state_of(ma), state_of(mb), 1e-6, 'SAM(0) vs SGD')
  end)

  it('the sharpness-aware steps differ from the base step', function()
    local ma, mb, mc = mlp(), mlp(), mlp()
    local x, y = batch('mlp')
    train(optim.SAM{base = sgd(ma), model = ma, rho = 0.5}, x, y, 1)
    train(optim.SAM{base = sgd(mb), model = mb, rho = 0}, x, y, 1)
    train(optim.GAM{base = sgd(mc), model = mc, grad_rho = 0.5, grad_norm_rho = 0.5}, x, y, 1)
    local a, b, c = state_of(ma)['0.weight'], state_of(mb)['0.weight'], state_of(mc)['0.weight']
    local dab, dac = 0, 0
    for i = 1, #a do dab = math.max(dab, math.abs(a[i] - b[i])); dac = math.max(dac, math.abs(a[i] - c[i])) end
    assert.is_true(dab > 1e-4, 'SAM(0.5) should move differently from SGD')
    assert.is_true(dac > 1e-4, 'GAM should move differently from SAM')
  end)

  it('paper and reference modes differ exactly by the h- formula', function()
    local x, y = batch('cnn')
    local function run(mode, beta, gamma)
      local m = cnn()
      train(optim.GAM{base = sgd(m), model = m, grad_rho = 0.05, grad_norm_rho = 0.3, alpha = 0.4,
                      beta = beta, gamma = gamma, mode = mode}, x, y, 2)
      return state_of(m)
    end
    -- β = 1: both h− are g0
    states_close(run('paper', 1, 0.3), run('reference', 1, 0.3), 1e-6, 'beta = 1')
    -- reference h− = g0 + (1−β) g2 = (2−β) (β′ g0 + (1−β′) g2) with β′ = 1/(2−β): the
    -- decomposition is linear in h−, so reference(β, γ) = paper(β′, (2−β) γ)
    local beta, gamma = 0.3, 0.2
    local ref = run('reference', beta, gamma)
    states_close(run('paper', 1 / (2 - beta), (2 - beta) * gamma), ref, 1e-5, 'rescaled paper')
    -- and with the same β, γ the modes do differ
    local paper = run('paper', beta, gamma)
    local a, b, d = paper['0.weight'], ref['0.weight'], 0
    for i = 1, #a do d = math.max(d, math.abs(a[i] - b[i])) end
    assert.is_true(d > 1e-6, 'paper and reference should differ for beta < 1')
  end)

  it('moves BatchNorm running statistics once per step and restores momentum', function()
    local x, y = batch('cnn')
    for _, make in ipairs {
      function(m) return optim.GAM{base = sgd(m), model = m} end,
      function(m) return optim.SAM{base = sgd(m), model = m, rho = 0.1} end,
      function(m) return optim.GSAM{base = sgd(m), model = m, rho = 0.1, alpha = 0.3} end} do
      local ma, mb = cnn(), cnn()
      make(ma):step(function()
        local pred = ma(x); local loss = loss_fn(pred, y); loss:backward(); return pred, loss
      end)
      gam.scope(function() mb(x) end)   -- one training forward at θ
      lists_close(state_of(ma)['1.running_mean'], state_of(mb)['1.running_mean'], 1e-6, 'running_mean')
      lists_close(state_of(ma)['1.running_var'], state_of(mb)['1.running_var'], 1e-6, 'running_var')
      assert.are.equal(0.1, ma:get(2).momentum)
    end
  end)

  it('step(closure) equals set_closure + step(), returning pass 0\'s prediction and loss', function()
    local ma, mb = cnn(), cnn()
    local x, y = batch('cnn')
    local oa = optim.GAM{base = sgd(ma), model = ma}
    local ob = optim.GAM{base = sgd(mb), model = mb}
    oa:set_closure(loss_fn, x, y)
    local mc = cnn()
    local expect_pred = gam.scope(function() return gam.no_grad(function() return mc(x):detach() end) end)
    local pa, la = oa:step()
    local calls = 0
    local pb, lb = ob:step(function()
      calls = calls + 1
      local pred = mb(x); local loss = loss_fn(pred, y); loss:backward(); return pred, loss
    end)
    assert.are.equal(4, calls)
    close(la, lb, 1e-7, 'loss')
    assert.are.equal('number', type(la))
    lists_close(pa:tolist(), pb:tolist(), 1e-7, 'prediction')
    lists_close(pa:tolist(), expect_pred:tolist(), 1e-6, 'prediction is the forward at θ')
    states_close(state_of(ma), state_of(mb), 1e-7, 'parameters')
  end)

  it('a non-finite loss or gradient names the pass and leaves the parameters unchanged', function()
    local x, y = batch('cnn')
    for _, cfg in ipairs {{'GAM', 2, 'loss'}, {'GAM', 3, 'grad'}, {'SAM', 1, 'grad'}, {'GSAM', 1, 'loss'},
                          {'GAM', 0, 'loss'}, {'GAM', 1, 'grad'}} do
      local kind, bad_pass, what = cfg[1], cfg[2], cfg[3]
      local m = cnn()
      local base = sgd(m)
      local opt = optim[kind]{base = base, model = m, rho = kind ~= 'GAM' and 0.1 or nil}
      local _, flat_grad = m:flat_parameters()
      train(opt, x, y, 1)                     -- one good step first (base state exists)
      local before, steps_before = state_of(m), base.state.steps[1]
      local mom_before = base:state_dict().state[1].momentum_buffer:tolist()
      local pass = 0
      local ok, err = pcall(opt.step, opt, function()
        local pred = m(x)
        local loss = loss_fn(pred, y)
        loss:backward()
        local k = pass
        pass = pass + 1
        if k == bad_pass then
          if what == 'loss' then return pred, 0 / 0 end
          flat_grad:fill_(math.huge)
        end
        return pred, loss
      end)
      assert.is_false(ok, kind .. ' should fail')
      assert.matches(kind .. ': pass ' .. bad_pass, err)
      assert.matches(what == 'loss' and 'non%-finite loss' or 'non%-finite', err)
      local after = state_of(m)
      for _, e in ipairs(m:named_parameters()) do
        lists_close(after[e.name], before[e.name], 0, kind .. ' ' .. e.name .. ' restored')
      end
      assert.are.equal(steps_before, base.state.steps[1])
      lists_close(base:state_dict().state[1].momentum_buffer:tolist(), mom_before, 0, 'momentum untouched')
      assert.are.equal(0.1, m:get(2).momentum)
      -- and the optimiser still works afterwards
      local l = train(opt, x, y, 1)
      assert.is_true(l[1] == l[1])
    end
  end)

  it('keeps at most 1 / 2 / 3 flat buffers (SAM / GSAM / GAM) and frees every pass', function()
    local x, y = batch('cnn')
    for _, kind in ipairs {'SAM', 'GSAM', 'GAM'} do
      local m = cnn()
      local n = 0
      for _, p in ipairs(m:parameters()) do n = n + p:numel() end
      local opt = optim[kind]{base = sgd(m), model = m}
      train(opt, x, y, 1)
      local extra = ({SAM = 1, GSAM = 2, GAM = 3})[kind]
      assert.are.equal((extra + 1) * 4 * n, opt:state_bytes(), kind .. ' state bytes (buffers + momentum)')
      collectgarbage(); collectgarbage()
      local live = gam.memory().live_tensors
      train(opt, x, y, 3)
      collectgarbage(); collectgarbage()
      assert.are.equal(live, gam.memory().live_tensors, kind .. ' leaks tensors across steps')
    end
    local m = mlp()
    local opt = optim.GAM{base = optim.AdamW{params = m:parameters()}, model = m}
    train(opt, batch('mlp'))
    assert.are.equal((3 + 2) * 4 * 83, opt:state_bytes(), 'GAM + AdamW')
  end)

  it('takes radii from schedulers (ProportionScheduler ties rho to the lr)', function()
    local ma, mb = mlp(), mlp()
    local x, y = batch('mlp')
    local base = sgd(ma, {lr = 0.2})
    local lr_sched = optim.CosineAnnealingLR{optimizer = base, T_max = 2}
    lr_sched:step()              -- lr 0.1: halfway
    local rho = optim.ProportionScheduler{scheduler = base, max_lr = 0.2, min_lr = 0, max_value = 0.4, min_value = 0}
    close(rho:value(), 0.2, 1e-12, 'rho at half the lr')
    train(optim.SAM{base = base, model = ma, rho = rho}, x, y, 1)
    train(optim.SAM{base = sgd(mb, {lr = 0.1}), model = mb, rho = 0.2}, x, y, 1)
    states_close(state_of(ma), state_of(mb), 1e-6, 'scheduled rho')
  end)

  it('rejects bad hyperparameters and arguments at construction', function()
    local m = mlp()
    local b = sgd(m)
    local other = sgd(mlp(3))
    local cases = {
      {function() optim.GAM{model = m} end, 'base is required'},
      {function() optim.GAM{base = b} end, 'model is required'},
      {function() optim.GAM{base = b, model = m, grad_rho = -0.1} end, 'grad_rho must be >= 0'},
      {function() optim.GAM{base = b, model = m, mode = 'papers'} end, "mode must be 'reference' or 'paper'"},
      {function() optim.GAM{base = b, model = m, adaptive = 1} end, 'adaptive must be true or false'},
      {function() optim.GAM{base = b, model = m, rho = 0.1} end, "unknown option 'rho'"},
      {function() optim.SAM{base = b, model = m, rho = -1} end, 'rho must be >= 0'},
      {function() optim.SAM{base = {}, model = m} end, 'base must be an optim.SGD'},
      {function() optim.SAM{base = b, model = {}} end, 'model must be an nn module'},
      {function() optim.SAM{base = other, model = m} end, 'base must optimise exactly the model'},
      {function() optim.GSAM{base = b, model = m, alpha = 'x'} end, 'alpha must be a number'},
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(c[1])
      assert.is_false(ok)
      assert.matches(c[2], tostring(err))
    end
    local opt = optim.SAM{base = b, model = m}
    assert.has_error(function() opt:step() end,
                     'SAM:step: no closure; call opt:set_closure(loss_fn, inputs, targets) first')
    local x, y = batch('mlp')
    opt:set_closure(function() return 1 end, x, y)
    local ok, err = pcall(opt.step, opt)
    assert.is_false(ok)
    assert.matches('loss_fn must return a scalar tensor', err)
  end)

  it('exposes the base optimiser\'s lr, so an lr scheduler can drive it', function()
    local m = mlp()
    local base = sgd(m, {lr = 0.4})
    local opt = optim.GAM{base = base, model = m}
    assert.are.equal(0.4, opt.lr)
    local sched = optim.StepLR{optimizer = opt, step_size = 1, gamma = 0.5}
    sched:step()
    assert.are.equal(0.2, base.lr)
    assert.are.equal(0.2, opt:get_lr())
    opt.lr = 0.1
    assert.are.equal(0.1, base:get_lr())
  end)

  it('state_dict round-trips through the base optimiser', function()
    local ma, mb = mlp(), mlp()
    local x, y = batch('mlp')
    local oa = optim.GAM{base = sgd(ma), model = ma}
    train(oa, x, y, 2)
    mb:load_state_dict(ma:state_dict())
    local ob = optim.GAM{base = sgd(mb), model = mb, alpha = 0.9}
    ob:load_state_dict(oa:state_dict())
    assert.are.equal(0.1, ob.alpha)
    train(oa, x, y, 1)
    train(ob, x, y, 1)
    states_close(state_of(mb), state_of(ma), 1e-6, 'resumed GAM')
  end)
end)

-- ---- schedulers --------------------------------------------------------------------------------
-- PyTorch values: torch 1.13 (Debian python3-torch), an SGD optimiser with lr 0.1,
-- recording param_groups[0]['lr'] after construction and after each scheduler.step().
describe('schedulers', function()
  local function values(s, n)
    local v = {s:value()}
    for _ = 1, n do v[#v + 1] = s:step() end
    return v
  end

  it('CosineAnnealingLR, StepLR, MultiStepLR and LinearLR follow PyTorch', function()
    local cases = {
      {function(o) return optim.CosineAnnealingLR{optimizer = o, T_max = 4, eta_min = 0.01} end,
       {0.1, 0.08681980515339464, 0.05500000000000001, 0.023180194846605363, 0.01, 0.023180194846605363,
        0.05500000000000002, 0.08681980515339469, 0.10000000000000006, 0.0868198051533947, 0.05500000000000005}},
      {function(o) return optim.StepLR{optimizer = o, step_size = 3, gamma = 0.5} end,
       {0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025}},
      {function(o) return optim.MultiStepLR{optimizer = o, milestones = {2, 5, 5}, gamma = 0.1} end,
       {0.1, 0.1, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.00010000000000000005,
        0.00010000000000000005}},
      {function(o) return optim.LinearLR{optimizer = o, start_factor = 0.25, end_factor = 1, total_iters = 4} end,
       {0.025, 0.043750000000000004, 0.06250000000000001, 0.08125000000000002, 0.10000000000000002,
        0.10000000000000002, 0.10000000000000002}},
    }
    for _, c in ipairs(cases) do
      local opt = optim.SGD{params = {gam.tensor({0}):requires_grad_()}, lr = 0.1}
      local s = c[1](opt)
      local got = values(s, #c[2] - 1)
      for i, v in ipairs(c[2]) do close(got[i], v, 1e-12, tostring(s) .. ' value ' .. i) end
      close(opt.lr, c[2][#c[2]], 1e-12, 'optimizer lr set')
    end
  end)

  it('the seed\'s linear, cosine and polynomial schedulers with warm-up', function()
    -- hand-computed from GSAM's scheduler.py formulas
    local lin = optim.LinearScheduler{T_max = 4, max_value = 1, min_value = 0.2}
    local v = values(lin, 5)
    lists_close(v, {0, 1, 1 - 0.8 / 4, 1 - 0.8 * 2 / 4, 1 - 0.8 * 3 / 4, 0.2}, 1e-12, 'linear')
    local cos = optim.CosineScheduler{T_max = 6, max_value = 2, min_value = 0, warmup_steps = 2, init_value = 0.5}
    v = values(cos, 5)
    lists_close(v, {0.5, 0.5, 1.25, 2, (math.cos(math.pi / 4) + 1), 1}, 1e-12, 'cosine with warm-up')
    local poly = optim.PolyScheduler{T_max = 10, max_value = 1, min_value = 0.1, poly_order = -0.5}
    v = values(poly, 4)
    lists_close(v, {0, 1, 0.1 + 0.9, 0.1 + 0.9 * 2 ^ -0.5, 0.1 + 0.9 * 3 ^ -0.5}, 1e-12, 'poly')
    local opt = optim.SGD{params = {gam.tensor({0}):requires_grad_()}, lr = 0.3}
    local s = optim.CosineScheduler{T_max = 4, max_value = 0.3, optimizer = opt}
    assert.are.equal(0.3, opt.lr)    -- untouched until the first step, as the seed
    s:step(); s:step()
    close(opt.lr, 0.3 * (math.cos(math.pi / 4) + 1) / 2, 1e-12, 'sets the optimizer lr')
  end)

  it('ProportionScheduler follows the lr between min and max', function()
    local lr = optim.LinearScheduler{T_max = 4, max_value = 1, min_value = 0}
    local rho = optim.ProportionScheduler{scheduler = lr, max_lr = 1, min_lr = 0, max_value = 0.1, min_value = 0.02}
    close(rho:value(), 0.02, 1e-12, 'lr 0 (init) -> min')
    lr:step(); rho:step()
    close(rho:value(), 0.1, 1e-12, 'lr max -> max')
    lr:step(); rho:step()
    close(rho:value(), 0.02 + 0.08 * 0.75, 1e-12, 'lr 0.75')
    local flat = optim.ProportionScheduler{scheduler = lr, max_lr = 1, min_lr = 1, max_value = 0.3, min_value = 0.3}
    close(flat:value(), 0.3, 0, 'constant')
    assert.has_error(function()
      optim.ProportionScheduler{scheduler = lr, max_lr = 0, min_lr = 1, max_value = 1, min_value = 0}
    end)
  end)

  it('state_dict round trip, and bad arguments', function()
    local a = optim.CosineAnnealingLR{base_lr = 1, T_max = 5}
    a:step(); a:step()
    local b = optim.CosineAnnealingLR{base_lr = 1, T_max = 5}
    b:load_state_dict(a:state_dict())
    close(b:step(), a:step(), 1e-15, 'resumed cosine')
    for _, c in ipairs {
      {function() optim.CosineAnnealingLR{T_max = 5} end, 'give optimizer'},
      {function() optim.StepLR{base_lr = 1} end, 'step_size must be a finite number'},
      {function() optim.MultiStepLR{base_lr = 1, milestones = {0}} end, 'milestones%[1%]'},
      {function() optim.LinearLR{base_lr = 1, start_factor = 0} end, 'start_factor'},
      {function() optim.PolyScheduler{T_max = 5, max_value = 1, poly_order = 1} end, 'poly_order'},
      {function() optim.LinearScheduler{T_max = 5, max_value = 1, warmup_steps = 5} end, 'warmup_steps'},
      {function() optim.CosineAnnealingLR{base_lr = 1, T_max = 5, tmax = 3} end, "unknown option 'tmax'"},
    } do
      local ok, err = pcall(c[1])
      assert.is_false(ok)
      assert.matches(c[2], tostring(err))
    end
  end)
end)
