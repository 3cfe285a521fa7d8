-- gam.data.augment — augmentation options and a one-shot batch transform.
--
-- Options (the loader's `augment`, or the table given to gam.data.augment):
--   true       the dataset's training augmentation (CIFAR: crop with 4 px of
--              zero padding + horizontal flip; Fashion-MNIST: flip), normalised
--   false/nil  normalisation only (the evaluation transform)
--   {pad = 4, flip = true, cutout = 16, normalize = true, mean = {...}, std = {...}}
--              any subset; `crop` is a synonym of `pad`, cutout = true means
--              half the image side; mean/std default to the dataset's
-- The work itself is engine/data.c (gam_augment_batch).
local ffi = require 'ffi'
local C = require 'gam.lib'
local tensor = require 'gam.tensor'

local M = {}

local KNOWN = {pad = true, crop = true, flip = true, cutout = true, normalize = true, mean = true,
               std = true, seed = true}

local function channel_list(v, n, what, op)
  if type(v) == 'number' then
    local r = {}
    for i = 1, n do r[i] = v end
    return r
  end
  if type(v) ~= 'table' or #v ~= n then
    error(string.format('%s: %s must be a number or a list of %d numbers (one per channel)', op, what, n), 0)
  end
  for i = 1, n do
    if type(v[i]) ~= 'number' then error(string.format('%s: %s[%d] must be a number', op, what, i), 0) end
  end
  return v
end

--- M.options(spec, dataset, op) -> a filled gam_augment cdata
function M.options(spec, ds, op)
  op = op or 'augment'
  local o
  if spec == true then
    o = {}
    for k, v in pairs(ds.augment or {}) do o[k] = v end
  elseif spec == nil or spec == false then
    o = {}
  elseif type(spec) == 'table' then
    o = spec
    for k in pairs(o) do
      if not KNOWN[k] then
        error(string.format("%s: unknown augmentation option '%s' (pad, flip, cutout, normalize, mean, std)",
                            op, tostring(k)), 0)
      end
    end
  else
    error(op .. ': augment must be true, false or a table of options', 0)
  end
  local a = ffi.new('gam_augment')
  local pad = o.pad or o.crop or 0
  if pad == false then pad = 0 end
  if pad == true then pad = 4 end
  a.pad = tensor.int_arg(pad, op, 'crop padding', 0)
  if o.flip ~= nil and type(o.flip) ~= 'boolean' then error(op .. ': flip must be true or false', 0) end
  a.flip = o.flip and 1 or 0
  local cut = o.cutout or 0
  if cut == true then cut = math.floor(math.max(ds.height, ds.width) / 2) end
  if cut == false then cut = 0 end
  a.cutout = tensor.int_arg(cut, op, 'cutout', 0)
  local normalize = o.normalize
  if normalize == nil then normalize = true end
  a.normalize = normalize and 1 or 0
  if normalize then
    local mean = channel_list(o.mean or ds.mean, ds.channels, 'mean', op)
    local std = channel_list(o.std or ds.std, ds.channels, 'std', op)
    for c = 1, ds.channels do
      if not (std[c] > 0) then error(string.format('%s: std[%d] = %s must be > 0', op, c, tostring(std[c])), 0) end
      a.mean[c - 1] = mean[c]
      a.std[c - 1] = std[c]
    end
  end
  return a
end

--- gam.data.augment(dataset, opts) -> x float32 [N,C,H,W], y int64 [N]
-- Applies the options (a table as above, plus seed = number) to every sample
-- in order; the same seed gives the same batch.
function M.apply(ds, spec)
  if type(ds) ~= 'table' or not ds.images then error('augment: expected a dataset', 0) end
  spec = spec or {}
  local seed = spec.seed or 0
  tensor.int_arg(seed, 'augment', 'seed', 0)
  local o = {}
  for k, v in pairs(spec) do if k ~= 'seed' then o[k] = v end end
  local a = M.options(o, ds, 'augment')
  local n = ds:size()
  local x = tensor.empty({n, ds.channels, ds.height, ds.width})
  local y = tensor.empty({n}, {dtype = 'int64'})
  local idx = ffi.new('int64_t[?]', n)
  for i = 0, n - 1 do idx[i] = i end
  local rng = ffi.new('uint64_t[2]')
  C.gam_rng_derive(rng, seed, 0, 0)
  tensor.check(C.gam_augment_batch(x.t, y.t, ds.images.t, ds.labels.t, idx, n, a, rng))
  return x, y
end

return M
