-- Argument checks shared by the layers: clear errors naming the layer and
-- the argument, never a crash deeper down.
local args = {}

--- opts(o, layer, allowed): o or {}, an error for a non-table or an unknown key
function args.opts(o, layer, allowed)
  if o == nil then return {} end
  if type(o) ~= 'table' then
    error(string.format('%s: options must be a table like {%s = ...}, got %s', layer, allowed[1], type(o)), 3)
  end
  local ok = {}
  for _, k in ipairs(allowed) do ok[k] = true end
  for k in pairs(o) do
    if not ok[k] then
      error(string.format("%s: unknown option '%s' (known: %s)", layer, tostring(k), table.concat(allowed, ', ')), 3)
    end
  end
  return o
end

--- int(v, layer, what, lo): an integer >= lo
function args.int(v, layer, what, lo)
  if type(v) ~= 'number' or v ~= math.floor(v) then
    error(string.format('%s: %s must be an integer, got %s', layer, what, tostring(v)), 3)
  end
  if lo and v < lo then error(string.format('%s: %s must be >= %d, got %d', layer, what, lo, v), 3) end
  return v
end

--- pair(v, layer, what, lo): a number n or a table {h, w} of integers >= lo -> {h, w}
function args.pair(v, layer, what, lo)
  if type(v) == 'number' then
    args.int(v, layer, what, lo)
    return {v, v}
  end
  if type(v) ~= 'table' or #v ~= 2 then
    error(string.format('%s: %s must be an integer or a table {h, w}, got %s', layer, what, tostring(v)), 3)
  end
  args.int(v[1], layer, what .. '[1]', lo)
  args.int(v[2], layer, what .. '[2]', lo)
  return {v[1], v[2]}
end

--- bool(v, default, layer, what)
function args.bool(v, default, layer, what)
  if v == nil then return default end
  if type(v) ~= 'boolean' then error(string.format('%s: %s must be true or false, got %s', layer, what, tostring(v)), 3) end
  return v
end

--- number(v, layer, what, lo, hi)
function args.number(v, layer, what, lo, hi)
  if type(v) ~= 'number' or v ~= v then
    error(string.format('%s: %s must be a number, got %s', layer, what, tostring(v)), 3)
  end
  if (lo and v < lo) or (hi and v > hi) then
    error(string.format('%s: %s = %s is outside [%s, %s]', layer, what, tostring(v), tostring(lo or '-inf'),
                        tostring(hi or 'inf')), 3)
  end
  return v
end

--- input(x, layer, ndim): x must be a live tensor with ndim dims
function args.input(x, layer, ndim)
  local tensor = require 'gam.tensor'
  tensor.T(x, layer, 'input')
  if ndim and x:dim() ~= ndim then
    error(string.format('%s: expected a %d-D input, got shape [%s]', layer, ndim, table.concat(x:shape(), ', ')), 3)
  end
  return x
end

return args
