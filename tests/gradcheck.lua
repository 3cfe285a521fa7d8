-- Test helpers shared by the specs: value comparison and central
-- finite-difference gradient checks.
--
--   local H = dofile(here .. '/gradcheck.lua')
--   H.close(t, {{1, 2}, {3, 4}})            -- shape and values, tolerance 1e-5
--   H.gradcheck(function(a, b) return a * b end, {a, b})
local ffi = require 'ffi'
local gam = require 'gam'

local H = {}

-- raw float pointer to the first element of a float32 tensor
function H.fptr(x)
  local t = x.t
  return ffi.cast('float *', t.storage.data) + t.offset
end

local function shape_of(v, shape, d)
  shape = shape or {}
  d = d or 1
  if type(v) == 'table' then
    shape[d] = #v
    if #v > 0 then shape_of(v[1], shape, d + 1) end
  end
  return shape
end

local function flat(v, out)
  out = out or {}
  if type(v) == 'table' then
    for i = 1, #v do flat(v[i], out) end
  else
    out[#out + 1] = v
  end
  return out
end
H.flat = flat

-- asserts that tensor t has the shape of the nested table expected (or
-- shape, when given) and values within atol + rtol*|expected|
function H.close(t, expected, atol, rtol, shape)
  atol, rtol = atol or 1e-5, rtol or 1e-5
  assert(gam.is_tensor(t), 'expected a tensor, got ' .. type(t))
  local want_shape = shape or (type(expected) == 'table' and shape_of(expected) or {})
  local got_shape = t:shape()
  assert(#got_shape == #want_shape and table.concat(got_shape, ',') == table.concat(want_shape, ','),
         string.format('shape [%s], expected [%s]', table.concat(got_shape, ','), table.concat(want_shape, ',')))
  local got, want = t:tolist(), flat(expected)
  assert(#got == #want, string.format('%d values, expected %d', #got, #want))
  for i = 1, #want do
    local g, w = got[i], want[i]
    local ok = (g ~= g and w ~= w) or g == w or math.abs(g - w) <= atol + rtol * math.abs(w)
    assert(ok, string.format('value %d is %.9g, expected %.9g (tensor %s)', i, g, w, tostring(t)))
  end
  return true
end

-- float values of a tensor as a flat Lua list
function H.values(t) return t:tolist() end

-- a deterministic well-conditioned float tensor: values in [lo, hi]
function H.uniform(shape, lo, hi, seed)
  if seed then gam.manual_seed(seed) end
  return gam.rand(shape, {low = lo or -1, high = hi or 1})
end

--- H.gradcheck(fn, inputs, opts): compares the gradients backward() gives for
-- L = sum(fn(inputs...) * w) (w fixed random weights) with central
-- differences (L(x + eps) - L(x - eps)) / 2eps for every element of every
-- input that requires grad. opts: eps (1e-2), atol (2e-3), rtol (2e-2).
-- Returns the largest error seen; raises with the first mismatch.
function H.gradcheck(fn, inputs, opts)
  opts = opts or {}
  local eps, atol, rtol = opts.eps or 1e-2, opts.atol or 2e-3, opts.rtol or 2e-2
  return gam.scope(function()
    for _, x in ipairs(inputs) do
      if x.requires_grad then x.grad = nil end
    end
    local out = fn(unpack(inputs))
    local w = gam.randn(out:shape())
    local function L()
      return gam.scope(function()
        local o = gam.no_grad(fn, unpack(inputs))
        local ov, wv, s = o:tolist(), w:tolist(), 0
        for i = 1, #ov do s = s + ov[i] * wv[i] end
        return s
      end)
    end
    local loss = (out * w):sum()
    loss:backward()
    local worst = 0
    for k, x in ipairs(inputs) do
      if x.requires_grad then
        local g = x.grad
        assert(g ~= nil, string.format('input %d got no gradient', k))
        local gv = g:tolist()
        local p = H.fptr(x)
        for i = 0, x:numel() - 1 do
          local v = p[i]
          p[i] = v + eps
          local up = L()
          p[i] = v - eps
          local down = L()
          p[i] = v
          local num = (up - down) / (2 * eps)
          local err = math.abs(num - gv[i + 1])
          worst = math.max(worst, err / (atol + rtol * math.abs(num)))
          if err > atol + rtol * math.abs(num) then
            error(string.format('input %d element %d: backward gives %.6g, finite differences %.6g',
                                k, i + 1, gv[i + 1], num), 2)
          end
        end
      end
    end
    return worst
  end)
end

return H
