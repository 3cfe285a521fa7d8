-- gam.argcheck: every argument check of tensors, F, nn and optim raises its
-- message at the caller's level — the position of the user's own call —
-- however deep inside the package the check ran.
local gam = require 'gam'
local argcheck = require 'gam.argcheck'
local nn, optim, F = gam.nn, gam.optim, gam.F

local THIS = debug.getinfo(1, 'S').short_src

-- the error of fn() and the line fn's body starts on (each call below is one line,
-- and no tail call: a tail call leaves no frame of its own)
local function err_and_line(fn)
  local line = debug.getinfo(fn, 'S').linedefined
  local ok, err = pcall(fn)
  assert.is_false(ok, 'expected an error')
  return tostring(err), line
end

local function at_caller(fn, message)
  local err, line = err_and_line(fn)
  assert.truthy(err:find(message, 1, true), err)
  local prefix = THIS .. ':' .. line .. ': '
  assert.are.equal(prefix, err:sub(1, #prefix), err)
end

describe('argument checks', function()
  it('raise at the line of the call, from tensors, F, nn and optim', function()
    at_caller(function() local _ = gam.zeros({-1}) end, 'zeros: size of dim 1 must be an integer >= 0, got -1')
    at_caller(function() local _ = gam.ones({2}) + 'a' end, 'add: second operand must be a tensor')
    at_caller(function() local _ = gam.ones({2}):sum(5) end, 'sum: dim 5 is out of range')
    at_caller(function() local _ = F.conv2d(gam.ones({1, 1, 3, 3}), gam.ones({1, 1, 1, 1}), nil, {stride = 0}) end,
              'conv2d: stride must be at least 1, got (0, 0)')
    at_caller(function() local _ = nn.Linear(3, 0) end, 'Linear: out_features must be >= 1')
    at_caller(function() local _ = nn.Conv2d(3, 4, 3, {bias = 0}) end, 'bias must be true or false')
    local ps = nn.Linear(2, 2):parameters()
    at_caller(function() local _ = optim.SGD{params = ps, lr = -0.1} end, 'optim.SGD: lr must be >= 0')
    at_caller(function() local _ = optim.SGD{params = ps, lr = 0.1, nesterov = 1} end,
              'optim.SGD: nesterov must be true or false')
  end)

  it('name the first caller outside the package even through pcall', function()
    local ok, err = pcall(gam.zeros, {1.5})
    assert.is_false(ok)
    assert.truthy(tostring(err):find('zeros: size of dim 1 must be an integer >= 0, got 1.5', 1, true), err)
  end)

  it('return the normal form of what they accept', function()
    assert.are.same({2, 3}, argcheck.pair({2, 3}, 'f', 'size', 1))
    assert.are.same({4, 4}, argcheck.pair(4, 'f', 'size', 1))
    assert.are.same({2, 5}, {argcheck.size2(nil, 'f', 'size', {2, 5}, 1)})
    assert.are.equal(0, argcheck.dim(1, 2, 'f'))
    assert.are.equal(1, argcheck.dim(-1, 2, 'f'))
    assert.are.equal(false, argcheck.bool(nil, false, 'f', 'flag'))
    assert.are.equal(0.5, argcheck.finite('f', 'x', nil, 0, 0.5))
  end)
end)
