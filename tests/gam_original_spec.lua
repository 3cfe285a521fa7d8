-- optim.GAM{variant = 'original'} (the paper's Algorithm 1, lua/gam/optim/GAMOriginal.lua):
-- the variant switch, six passes per step, α = 0 is the base step, the
-- schedulable radius, the non-finite guard, state dicts and bad options.
-- (Its golden cases against PyTorch's exact Hessian-vector products run in
-- tests/run_all.sh: tests/fixtures/reference_original.)
local gam = require 'gam'
local nn, optim, F = gam.nn, gam.optim, gam.F
local here = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.'
local H = dofile(here .. '/helpers.lua')

local function mlp(seed)
  gam.manual_seed(seed or 3)
  local m = nn.Sequential{nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)}
  m:flat_parameters()
  return m
end

local function data()
  gam.manual_seed(9)
  return gam.keep(gam.randn({5, 6})), gam.keep(gam.randint(0, 3, {5}))
end

local function lossf(p, y) return F.cross_entropy(p, y):mean() end

describe("optim.GAM variant 'original'", function()
  it('is chosen by variant, reports itself and runs six passes per step', function()
    local m = mlp()
    local opt = optim.GAM{base = optim.SGD{params = m:parameters(), lr = 0.1}, model = m, variant = 'original',
                          grad_norm_rho = 0.1, alpha = 0.5}
    assert.are.equal('original', opt.variant)
    H.contains(tostring(opt), 'variant = original')
    local x, y = data()
    local calls = 0
    local pred, loss = opt:step(function()
      calls = calls + 1
      local p = m(x)
      local l = lossf(p, y)
      l:backward()
      return p, l
    end)
    assert.are.equal(6, calls)
    assert.is_true(type(loss) == 'number' and loss > 0)
    assert.are.same({5, 3}, pred:shape())
    -- the default is today's accelerated variant
    local m4 = mlp(4)
    local acc = optim.GAM{base = optim.SGD{params = m4:parameters(), lr = 0.1}, model = m4}
    assert.is_nil(rawget(acc, 'fd_scale'))
  end)

  it('alpha = 0 is the base optimiser step', function()
    local x, y = data()
    local ma, mb = mlp(), mlp()
    local opt = optim.GAM{base = optim.SGD{params = ma:parameters(), lr = 0.1, momentum = 0.9}, model = ma,
                          variant = 'original', grad_norm_rho = 0.3, alpha = 0}
    local base = optim.SGD{params = mb:parameters(), lr = 0.1, momentum = 0.9}
    opt:set_closure(lossf, x, y)
    for _ = 1, 2 do
      opt:step()
      base:zero_grad()
      lossf(mb(x), y):backward()
      base:step()
    end
    local fa, fb = ma:flat_parameters(), mb:flat_parameters()
    assert.is_true(fa:allclose(fb, 0, 1e-7))
  end)

  it('grad_norm_rho and alpha may be schedulers, read at every step', function()
    local x, y = data()
    local sched = {v = 0.2}
    function sched:value() return self.v end
    local ma, mb = mlp(), mlp()
    local oa = optim.GAM{base = optim.SGD{params = ma:parameters(), lr = 0.1}, model = ma, variant = 'original',
                         grad_norm_rho = sched, alpha = 0.7}
    local ob = optim.GAM{base = optim.SGD{params = mb:parameters(), lr = 0.1}, model = mb, variant = 'original',
                         grad_norm_rho = 0.2, alpha = 0.7}
    oa:set_closure(lossf, x, y)
    ob:set_closure(lossf, x, y)
    oa:step(); ob:step()
    assert.is_true(ma:flat_parameters():allclose(mb:flat_parameters(), 0, 0))
    sched.v = 0.6
    oa:step(); ob:step()
    assert.is_false(ma:flat_parameters():allclose(mb:flat_parameters(), 0, 1e-6))
  end)

  it('a non-finite pass raises, naming it, and leaves the parameters as before the step', function()
    local m = mlp()
    local x, y = data()
    local opt = optim.GAM{base = optim.SGD{params = m:parameters(), lr = 0.1, momentum = 0.9}, model = m,
                          variant = 'original'}
    local before = gam.keep(m:flat_parameters():clone())
    local calls = 0
    local err = H.errmsg(opt.step, opt, function()
      calls = calls + 1
      local p = m(x)
      local l = lossf(p, y)
      if calls == 4 then l = l * (0 / 0) end
      l:backward()
      return p, l
    end)
    H.contains(err, 'pass 3')
    H.contains(err, 'non-finite')
    assert.is_true(m:flat_parameters():allclose(before, 0, 0))
  end)

  it('state_dict round trip; an accelerated state is refused', function()
    local m = mlp()
    local x, y = data()
    local opt = optim.GAM{base = optim.SGD{params = m:parameters(), lr = 0.1, momentum = 0.9}, model = m,
                          variant = 'original', grad_norm_rho = 0.3}
    opt:set_closure(lossf, x, y)
    opt:step()
    local sd = opt:state_dict()
    assert.are.equal('original', sd.hyper.variant)
    assert.are.equal(0.3, sd.hyper.grad_norm_rho)
    local m2 = mlp()
    local o2 = optim.GAM{base = optim.SGD{params = m2:parameters(), lr = 0.1, momentum = 0.9}, model = m2,
                         variant = 'original'}
    o2:load_state_dict(sd)
    assert.are.equal(0.3, o2.grad_norm_rho)
    local m5 = mlp(5)
    local acc = optim.GAM{base = optim.SGD{params = m5:parameters(), lr = 0.1}, model = m5}
    H.contains(H.errmsg(o2.load_state_dict, o2, acc:state_dict()), 'accelerated')
  end)

  it('bad options are clear errors', function()
    local m = mlp()
    local base = optim.SGD{params = m:parameters(), lr = 0.1}
    H.contains(H.errmsg(optim.GAM, {base = base, model = m, variant = 'fast'}),
               "variant must be 'accelerated' or 'original'")
    H.contains(H.errmsg(optim.GAM, {base = base, model = m, variant = 'original', adaptive = true}), 'adaptive')
    H.contains(H.errmsg(optim.GAM, {base = base, model = m, variant = 'original', grad_rho = 0.1}),
               "unknown option 'grad_rho'")
    H.contains(H.errmsg(optim.GAM, {base = base, model = m, variant = 'original', fd_scale = 0}), 'fd_scale')
    H.contains(H.errmsg(optim.GAM, {base = base, model = m, variant = 'original', grad_norm_rho = -1}), 'grad_norm_rho')
    H.contains(H.errmsg(optim.GAM, {model = m, variant = 'original'}), 'base is required')
  end)
end)
