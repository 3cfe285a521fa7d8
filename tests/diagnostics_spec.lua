-- GAM's per-step diagnostics (gam/optim/diagnostics.lua, opt:diagnostics()):
-- ‖g0‖ against a plain backward pass, cos(h+, h−) and ‖d‖/‖g0‖ where GAM
-- reduces to SGD (both radii 0: every gradient is g0, cos = 1, d = g0), and
-- ‖d‖ against the parameters' move under SGD(lr 1) with no momentum or decay.
local gam = require 'gam'
local nn, optim, F = gam.nn, gam.optim, gam.F

local function setup(rho, rho2)
  gam.manual_seed(7)
  local model = nn.Sequential{nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)}
  model:flat_parameters()
  local base = optim.SGD{params = model:parameters(), lr = 1, momentum = 0, weight_decay = 0}
  local opt = optim.GAM{base = base, model = model, grad_rho = rho, grad_norm_rho = rho2}
  gam.manual_seed(3)
  local x, y = gam.randn({5, 6}), gam.randint(0, 3, {5})
  return model, opt, x, y
end

local function loss_fn(pred, y) return F.smooth_cross_entropy(pred, y, 0.1):mean() end

local function flat(model)
  local t, g = model:flat_parameters()
  return t:totable(), g
end

local function norm(list)
  local s = 0
  for _, v in ipairs(list) do s = s + v * v end
  return math.sqrt(s)
end

describe('GAM diagnostics', function()
  it('are off by default and switched by opt:diagnostics(true/false)', function()
    local _, opt, x, y = setup(0.03, 0.2)
    opt:set_closure(loss_fn, x, y)
    opt:step()
    assert.is_nil(opt:diagnostics())
    opt:diagnostics(true)
    opt:step()
    assert.are.equal('table', type(opt:diagnostics()))
    opt:diagnostics(false)
    assert.is_nil(opt:diagnostics())
    local ok, err = pcall(opt.diagnostics, opt, 'yes')
    assert.is_false(ok)
    assert.truthy(tostring(err):find('expects true, false or nothing', 1, true), err)
  end)

  it('measure ‖g0‖ as a plain backward pass does, and ‖d‖ as the move of SGD(lr 1)', function()
    local model, opt, x, y = setup(0.03, 0.2)
    local _, g = flat(model)
    g:fill_(0)
    loss_fn(model(x), y):backward()
    local g0 = norm(g:totable())
    opt:diagnostics(true)
    local before = flat(model)
    opt:set_closure(loss_fn, x, y)
    opt:step()
    local after = flat(model)
    local move = {}
    for i = 1, #before do move[i] = before[i] - after[i] end
    local d = opt:diagnostics()
    assert.is_true(math.abs(d.g0_norm - g0) <= 1e-5 * g0, d.g0_norm .. ' vs ' .. g0)
    assert.is_true(math.abs(d.update_norm - norm(move)) <= 1e-4 * d.update_norm, d.update_norm .. ' vs ' .. norm(move))
    assert.is_true(math.abs(d.update_ratio - d.update_norm / d.g0_norm) < 1e-9)
    assert.is_true(d.cos > -1 and d.cos < 1, tostring(d.cos))   -- the radii move h+ and h− apart
  end)

  it('give cos 1 and ratio 1 when both radii are 0 (GAM is then SGD)', function()
    local _, opt, x, y = setup(0, 0)
    opt:diagnostics(true)
    opt:set_closure(loss_fn, x, y)
    opt:step()
    local d = opt:diagnostics()
    assert.is_true(math.abs(d.cos - 1) < 1e-5, tostring(d.cos))
    assert.is_true(math.abs(d.update_ratio - 1) < 1e-5, tostring(d.update_ratio))
  end)
end)
