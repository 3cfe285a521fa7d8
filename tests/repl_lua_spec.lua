-- lua/gam/repl.lua without a terminal (tests/repl_spec.lua drives the REPL
-- itself through tmux): completion candidates, doc comments found for
-- modules, classes, instances, functions and names, and the printer's summaries.
local gam = require 'gam'
local repl = require 'gam.repl'

local function has(list, x)
  for _, v in ipairs(list) do if v == x then return true end end
  return false
end

describe('gam.repl', function()
  it('completes globals, keywords, lazy modules, fields and methods', function()
    local saved = rawget(_G, 'gam')
    rawset(_G, 'gam', gam)
    rawset(_G, 'repl_spec_model', gam.nn.Sequential{gam.nn.Linear(2, 3)})
    rawset(_G, 'repl_spec_x', gam.ones({2}))
    local ok, err = pcall(function()
      assert.are.same({'gam.load', 'gam.log'}, repl.complete('gam.lo'))   -- gam.log: loaded on first use
      assert.is_true(has(repl.complete('gam.opt'), 'gam.optim'))
      assert.are.same({'gam.optim.GAM', 'gam.optim.GSAM'}, repl.complete('gam.optim.G'))
      assert.is_true(has(repl.complete('fun'), 'function'))
      assert.are.same({'repl_spec_model'}, repl.complete('repl_spec_mod'))
      local m = repl.complete('repl_spec_model:')
      for _, name in ipairs {'forward', 'parameters', 'zero_grad', 'flat_parameters', 'add_module'} do
        assert.is_true(has(m, 'repl_spec_model:' .. name), name)
      end
      assert.is_true(has(repl.complete('repl_spec_x:ma'), 'repl_spec_x:matmul'))
      assert.are.same({'string.upper'}, repl.complete('string.up'))
      assert.are.same({}, repl.complete('nosuchthing.x'))
      assert.are.same({}, repl.complete('a b'))
    end)
    rawset(_G, 'gam', saved)
    rawset(_G, 'repl_spec_model', nil)
    rawset(_G, 'repl_spec_x', nil)
    assert(ok, err)
  end)

  it('finds the doc comments of modules, classes, instances, functions and names', function()
    local d = repl.doc(gam.optim.GAM)
    assert.truthy(d:find('Gradient norm Aware Minimization', 1, true), d)
    assert.truthy(d:find('h+ = α g1 + (1−α) g3', 1, true), d)
    assert.truthy(d:find('functions: .*step'), d)
    d = repl.doc(gam.optim.GAM.step)
    assert.truthy(d:find('^opt:step%(%[closure%]%) %-> pred, loss'), d)
    assert.truthy(d:find('Sharpness%.lua:%d+%) function Sharpness:step%(closure%)'), d)
    d = repl.doc(gam.nn.Linear(2, 3))
    assert.truthy(d:find('nn.Linear', 1, true), d)
    assert.are.equal(repl.doc(gam.optim.GAM), repl.doc('gam.optim.GAM'))
    assert.truthy(repl.doc('gam.log.tensorboard'):find('gam.log.tensorboard(dir [, options])', 1, true))
    assert.truthy(repl.doc(gam.zeros(2)):find('^a tensor of shape 2 float32 cpu'))
    assert.is_nil(repl.doc(print))
    assert.is_nil(repl.doc('no.such.name'))
    assert.is_nil(repl.doc(42))
  end)

  it('prints tensors with statistics when abbreviated, and plain tables by field', function()
    local lines = {}
    local real = print
    rawset(_G, 'print', function(s) lines[#lines + 1] = s end)
    local ok, err = pcall(function()
      repl.print(gam.full({30, 40}, 3), {b = gam.zeros({2, 3}), a = 'x', 7}, nil)
      repl.print(gam.ones({2}))
    end)
    rawset(_G, 'print', real)
    assert(ok, err)
    assert.truthy(lines[1]:find('\n%-%- 1200 elements: min 3, max 3, mean 3, std 0\t'), lines[1])
    assert.truthy(lines[1]:find('\t{%[1%] = 7, a = "x", b = tensor%[2x3 float32 cpu%]}\tnil$'), lines[1])
    assert.is_nil(lines[2]:find('elements', 1, true))
  end)
end)
