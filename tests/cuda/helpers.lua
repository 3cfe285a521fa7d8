-- Shared by the GPU test files of tests/cuda/ (layers, optimisers, models):
-- the device under test, relative errors, and `both`, which runs a function
-- on the cpu (the oracle) and on the device and compares outputs and
-- gradients.
--
-- The device is cuda. With GAM_CUDA_TESTS_ON_CPU=1 the "device" side runs on
-- the cpu as well: every comparison then holds trivially, but the test code
-- itself (its calls, shapes and bookkeeping) is exercised on a machine
-- without a GPU. It proves nothing about the CUDA backend.
local gam = require 'gam'
local assert = require 'luassert'   -- (busted's assert: this file is loaded with dofile)

local H = {}

H.DEV = os.getenv('GAM_CUDA_TESTS_ON_CPU') == '1' and 'cpu' or 'cuda'
H.TOL = 1e-4   -- one op, float32, no TF32: max |cuda - cpu| / max |cpu|

function H.require_device(file)
  if H.DEV == 'cuda' and not gam.cuda_available() then
    error(file .. ' needs a CUDA device: gam.cuda_available() is false' ..
          (gam.cuda_built() and '' or ' (libgam was built without CUDA)') ..
          '; GAM_CUDA_TESTS_ON_CPU=1 runs the test code on the cpu only', 0)
  end
end

function H.errmsg(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, 'expected an error, the call succeeded')
  return tostring(err)
end

function H.contains(s, ...)
  for i = 1, select('#', ...) do
    local want = select(i, ...)
    assert(s:find(want, 1, true), string.format('%q does not mention %q', s, want))
  end
end

-- max |got - ref| / max |ref| over two lists (NaN in the same places counts as equal)
function H.list_error(r, g)
  assert(#r == #g, string.format('element counts differ: %d and %d', #r, #g))
  local num, den = 0, 0
  for i = 1, #r do
    local a, b = r[i], g[i]
    if a ~= a or b ~= b then
      if not (a ~= a and b ~= b) then return math.huge end
    else
      num = math.max(num, math.abs(a - b))
      den = math.max(den, math.abs(a))
    end
  end
  return den > 0 and num / den or num
end

-- the same for tensors; big ones are compared with engine ops on the cpu
-- (a NaN anywhere makes the error NaN, which fails every tolerance)
function H.rel_error(ref, got)
  if ref:numel() <= 100000 then return H.list_error(ref:tolist(), got:tolist()) end
  return gam.scope(function()
    local r, g = ref:to('cpu'), got:to('cpu')
    local num = (r - g):abs():max():item()
    local den = r:abs():max():item()
    return den > 0 and num / den or num
  end)
end

-- got (device) matches ref (cpu) within tol; exact = true: bit for bit
function H.close(ref, got, what, tol, exact)
  assert.are.equal('cpu', ref:device(), what)
  assert.are.equal(H.DEV, got:device(), what .. ': result is not on ' .. H.DEV)
  assert.are.same(ref:shape(), got:shape(), what .. ': shape')
  assert.are.equal(ref:dtype(), got:dtype(), what .. ': dtype')
  if exact or ref:dtype() ~= 'float32' then
    local r, g = ref:tolist(), got:tolist()
    for i = 1, #r do
      local same = r[i] == g[i] or (r[i] ~= r[i] and g[i] ~= g[i])
      assert(same, string.format('%s: element %d is %.9g, the cpu has %.9g (expected the same bits)', what, i,
                                 g[i], r[i]))
    end
    return
  end
  local e = H.rel_error(ref, got)
  tol = tol or H.TOL
  assert(e < tol, string.format('%s: relative error %.3g (tolerance %g)', what, e, tol))
end

-- Runs fn on copies of the cpu inputs on both devices and compares outputs,
-- then backpropagates one random weighting of the float outputs on both and
-- compares the gradients of the float inputs. opts: nograd, tol, exact,
-- grad_tol; fn gets the inputs and the device name.
function H.both(name, fn, inputs, opts)
  opts = opts or {}
  gam.scope(function()
    local function leaves(dev)
      local r = {}
      for i, x in ipairs(inputs) do
        local y = x:to(dev):detach()
        if dev == 'cpu' then y = y:clone() end  -- own storage, also when DEV is cpu
        if x:dtype() == 'float32' and not opts.nograd then y:requires_grad_(true) end
        r[i] = y
      end
      return r
    end
    local cin, gin = leaves('cpu'), leaves(H.DEV)
    local cout, gout = {fn(cin, 'cpu')}, {fn(gin, H.DEV)}
    assert.are.equal(#cout, #gout)
    for k = 1, #cout do H.close(cout[k], gout[k], name .. ': output ' .. k, opts.tol, opts.exact) end
    if opts.nograd then return end
    local lc, lg
    for k = 1, #cout do
      if cout[k]:dtype() == 'float32' and cout[k].requires_grad then
        local w = gam.randn(cout[k]:shape())
        local c, g = (cout[k] * w):sum(), (gout[k] * w:to(H.DEV)):sum()
        lc, lg = lc and lc + c or c, lg and lg + g or g
      end
    end
    if not lc then return end
    lc:backward()
    lg:backward()
    for i = 1, #cin do
      if cin[i].requires_grad then
        local gc, gg = cin[i].grad, gin[i].grad
        assert(gc ~= nil and gg ~= nil, name .. ': no gradient for input ' .. i)
        H.close(gc, gg, name .. ': gradient of input ' .. i, opts.grad_tol or opts.tol, opts.exact)
      end
    end
  end)
end

function H.shape_str(s) return '[' .. table.concat(s, ',') .. ']' end

return H
