-- gam.printing — tostring for tensors, in PyTorch's style:
--
--   tensor([[ 0.0742, -0.5159,  1.1775],
--           [ 0.3797,  0.0232,  2.1309]], shape=[2, 3], dtype=float32, device=cpu)
--
-- One number format for all the values shown (fixed with 4 decimals, or
-- scientific when the magnitudes are huge, tiny or span more than 10^4;
-- integers as `3.` in float
-- tensors), one column width, rows wrapped at 80 characters, and tensors of
-- more than 1000 elements abbreviated to their first and last 3 entries per
-- dim with `...`. Scalars print on one line: tensor(3.5000, dtype=float32, device=cpu).
local M = {}

local LINEWIDTH = 80
local THRESHOLD = 1000 -- more elements than this: abbreviate
local EDGE = 3         -- entries kept at each end of an abbreviated dim

local function finite(v) return v == v and v ~= math.huge and v ~= -math.huge end

-- The formatter for a list of float values, chosen the way PyTorch chooses it.
local function float_format(vals)
  local maxabs, minabs, allint = 0, math.huge, true
  for _, v in ipairs(vals) do
    if finite(v) then
      local a = math.abs(v)
      if a > maxabs then maxabs = a end
      if a > 0 and a < minabs then minabs = a end
      if v ~= math.floor(v) then allint = false end
    end
  end
  local f
  if allint then
    f = maxabs > 1e8 and function(v) return string.format('%.4e', v) end
        or function(v) return string.format('%.0f.', v) end
  elseif maxabs >= 1e8 or maxabs < 1e-4 or maxabs / minabs > 1e4 then
    f = function(v) return string.format('%.4e', v) end
  else
    f = function(v) return string.format('%.4f', v) end
  end
  return function(v)
    if v ~= v then return 'nan' end
    if v == math.huge then return 'inf' end
    if v == -math.huge then return '-inf' end
    return f(v)
  end
end

local function int_format(v) return string.format('%d', v) end

--- M.format{shape=, get=function(flat_index_0based) -> number, isint=, suffix=}
-- returns the printed tensor; suffix is the text after the values ("dtype=...").
function M.format(o)
  local shape, get, nd = o.shape, o.get, #o.shape
  local numel = 1
  for d = 1, nd do numel = numel * shape[d] end
  local prefix = 'tensor('
  if numel == 0 then return prefix .. '[], ' .. o.suffix .. ')' end

  local abbreviate = numel > THRESHOLD
  local strides, s = {}, 1
  for d = nd, 1, -1 do strides[d] = s; s = s * shape[d] end
  -- the indices shown along dim d (false marks the '...')
  local shown = {}
  for d = 1, nd do
    local sz, r = shape[d], {}
    if abbreviate and sz > 2 * EDGE then
      for i = 1, EDGE do r[#r + 1] = i end
      r[#r + 1] = false
      for i = sz - EDGE + 1, sz do r[#r + 1] = i end
    else
      for i = 1, sz do r[i] = i end
    end
    shown[d] = r
  end

  -- one format and one width for every value shown
  local vals = {}
  local function collect(d, off)
    if d > nd then vals[#vals + 1] = get(off); return end
    for _, i in ipairs(shown[d]) do
      if i then collect(d + 1, off + (i - 1) * strides[d]) end
    end
  end
  collect(1, 0)
  local fmt = o.isint and int_format or float_format(vals)
  local width = 0
  for _, v in ipairs(vals) do width = math.max(width, #fmt(v)) end
  local function cell(v)
    local x = fmt(v)
    return string.rep(' ', width - #x) .. x
  end

  if nd == 0 then return prefix .. fmt(get(0)) .. ', ' .. o.suffix .. ')' end

  -- rows of the last dim hold as many cells as fit in LINEWIDTH
  local per_line = math.max(1, math.floor((LINEWIDTH - #prefix - nd) / (width + 2)))
  local function render(d, off)
    local indent = string.rep(' ', #prefix + d)
    local parts = {}
    for _, i in ipairs(shown[d]) do
      if d == nd then
        parts[#parts + 1] = i and cell(get(off + i - 1)) or '...'
      else
        parts[#parts + 1] = i and render(d + 1, off + (i - 1) * strides[d]) or '...'
      end
    end
    if d == nd then
      local lines = {}
      for k = 1, #parts, per_line do
        lines[#lines + 1] = table.concat(parts, ', ', k, math.min(k + per_line - 1, #parts))
      end
      return '[' .. table.concat(lines, ',\n' .. indent) .. ']'
    end
    return '[' .. table.concat(parts, ',' .. string.rep('\n', nd - d) .. indent) .. ']'
  end
  local body = prefix .. render(1, 0)
  local last = body:match('[^\n]*$')
  if #last + 2 + #o.suffix + 1 > LINEWIDTH then
    return body .. ',\n' .. string.rep(' ', #prefix) .. o.suffix .. ')'
  end
  return body .. ', ' .. o.suffix .. ')'
end

return M
