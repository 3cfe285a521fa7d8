-- gam.argcheck — the package's argument checks: tensors, F, nn and optim.
--
-- Every check raises a clear error naming the function and the argument
-- ('conv2d: stride must be at least 1, got (0, 0)'), at the caller's level:
-- the error's position is the first caller outside the gam package, so a
-- user reads the line of their own call, however deep in gam the check ran.
-- Each returns the checked value (or its normal form) on success.
local ffi = require 'ffi'

local M = {}

local PKG = debug.getinfo(1, 'S').source:match('^@(.*/)argcheck%.lua$')

-- the level of the first caller outside the package, as counted by error()
-- called from the function one level below this one
local function user_level()
  local k = 3   -- 1: user_level, 2: raise/fail, 3: the check that called them
  while true do
    local info = debug.getinfo(k, 'S')
    if not info then return 0 end
    local src = info.source
    if info.what ~= 'C' and not (PKG and src:sub(1, #PKG + 1) == '@' .. PKG) then return k - 1 end
    k = k + 1
  end
end

--- argcheck.raise(msg): error(msg) at the caller's level
function M.raise(msg) error(msg, user_level()) end

--- argcheck.fail(fmt, ...): error(string.format(fmt, ...)) at the caller's level
function M.fail(fmt, ...) error(string.format(fmt, ...), user_level()) end
local fail = M.fail

local function is_finite(v) return v == v and v ~= math.huge and v ~= -math.huge end
M.is_finite = is_finite

local function type_of(v) return type(v) == 'number' and tostring(v) or type(v) end

-- ---- numbers ------------------------------------------------------------------------
local MAX_INT = 2 ^ 53

--- integer(v, op, what, lo, hi): an integer in [lo, hi] (either may be nil)
function M.integer(v, op, what, lo, hi)
  if type(v) ~= 'number' or v ~= math.floor(v) or math.abs(v) > MAX_INT then
    fail('%s: %s must be an integer, got %s', op, what, type_of(v))
  end
  if (lo and v < lo) or (hi and v > hi) then
    fail('%s: %s = %s is out of range%s', op, what, tostring(v),
         hi and string.format(' [%d, %d]', lo, hi) or string.format(' (at least %d)', lo))
  end
  return v
end

--- num(v, op, what): any number
function M.num(v, op, what)
  if type(v) ~= 'number' then fail('%s: %s must be a number, got %s', op, what, type(v)) end
  return v
end

--- opt_num(v, default, op, what): default when nil, else a number
function M.opt_num(v, default, op, what)
  if v == nil then return default end
  return M.num(v, op, what)
end

--- int(v, who, what, lo): an integer >= lo (layers' wording)
function M.int(v, who, what, lo)
  if type(v) ~= 'number' or v ~= math.floor(v) then
    fail('%s: %s must be an integer, got %s', who, what, tostring(v))
  end
  if lo and v < lo then fail('%s: %s must be >= %d, got %d', who, what, lo, v) end
  return v
end

--- number(v, who, what, lo, hi): a number (not NaN) in [lo, hi]
function M.number(v, who, what, lo, hi)
  if type(v) ~= 'number' or v ~= v then fail('%s: %s must be a number, got %s', who, what, tostring(v)) end
  if (lo and v < lo) or (hi and v > hi) then
    fail('%s: %s = %s is outside [%s, %s]', who, what, tostring(v), tostring(lo or '-inf'), tostring(hi or 'inf'))
  end
  return v
end

--- finite(who, name, v, lo, default): a finite number >= lo (lo may be nil)
function M.finite(who, name, v, lo, default)
  if v == nil then v = default end
  if type(v) ~= 'number' or not is_finite(v) then
    fail('%s: %s must be a finite number, got %s', who, name, tostring(v))
  end
  if lo and v < lo then fail('%s: %s must be >= %g, got %g', who, name, lo, v) end
  return v
end

-- ---- dims and shapes (tensors) ----------------------------------------------------------
--- dim(d, ndim, op): a 1-based Lua dim (negative counts from the end) -> the 0-based engine dim
--- shape(op, s, ...): {2,3} or 2,3 -> int64_t[n], n (a buffer reused by the next call)
function M.dim(d, ndim, op)
  if type(d) ~= 'number' or d ~= math.floor(d) then
    fail('%s: dim must be an integer, got %s', op, type_of(d))
  end
  if d == 0 or d > ndim or d < -ndim then
    fail('%s: dim %s is out of range for a tensor with %d dims (dims are 1-based)', op, tostring(d), ndim)
  end
  return d > 0 and d - 1 or ndim + d
end

-- sizes are integers >= 0 (reshape: or -1)
local shape_buf = ffi.new('int64_t[8]')
function M.shape(op, s, ...)
  if s == nil then
    fail('%s: expected a shape (a table like {2, 3} or sizes 2, 3), got nil', op)
  end
  if type(s) ~= 'table' then s = {s, ...} end
  local n = #s
  if n > 8 then fail('%s: a tensor has at most 8 dims, got %d', op, n) end
  for k in pairs(s) do
    if type(k) ~= 'number' or k < 1 or k > n or k ~= math.floor(k) then
      fail('%s: shape must be a list of sizes, found key %s', op, tostring(k))
    end
  end
  local lo = op == 'reshape' and -1 or 0
  for i = 1, n do
    local v = s[i]
    if type(v) ~= 'number' or v ~= math.floor(v) or v < lo or v > MAX_INT then
      fail('%s: size of dim %d must be an integer >= %d, got %s', op, i, lo, type_of(v))
    end
    shape_buf[i - 1] = v
  end
  return shape_buf, n
end

-- ---- sizes ---------------------------------------------------------------------------
--- pair(v, who, what, lo): a number n or a table {h, w} of integers >= lo -> {h, w} (layers)
function M.pair(v, who, what, lo)
  if type(v) == 'number' then
    M.int(v, who, what, lo)
    return {v, v}
  end
  if type(v) ~= 'table' or #v ~= 2 then
    fail('%s: %s must be an integer or a table {h, w}, got %s', who, what, tostring(v))
  end
  M.int(v[1], who, what .. '[1]', lo)
  M.int(v[2], who, what .. '[2]', lo)
  return {v[1], v[2]}
end

--- size2(v, op, what, default, lo) -> h, w: a number n ({n, n}) or a pair {h, w}
-- of integers >= lo (functional forms)
function M.size2(v, op, what, default, lo)
  if v == nil then v = default end
  local h, w
  if type(v) == 'number' then
    h, w = v, v
  elseif type(v) == 'table' and #v == 2 then
    h, w = v[1], v[2]
  else
    fail('%s: %s must be a number or a pair {h, w}, got %s', op, what,
         type(v) == 'table' and ('a table of ' .. #v) or tostring(v))
  end
  for _, k in ipairs {h, w} do
    if type(k) ~= 'number' or k ~= math.floor(k) then fail('%s: %s must be integers, got %s', op, what, tostring(k)) end
    if lo and k < lo then fail('%s: %s must be at least %d, got (%d, %d)', op, what, lo, h, w) end
  end
  return h, w
end

-- ---- booleans ------------------------------------------------------------------------
--- bool(v, default, who, what): true or false (default when nil)
function M.bool(v, default, who, what)
  if v == nil then return default end
  if type(v) ~= 'boolean' then fail('%s: %s must be true or false, got %s', who, what, tostring(v)) end
  return v
end

--- flag(v, op, what, default): a boolean (default when nil), functional forms' wording
function M.flag(v, op, what, default)
  if v == nil then return default end
  if type(v) ~= 'boolean' then fail('%s: %s must be a boolean, got %s', op, what, type(v)) end
  return v
end

-- ---- option tables ----------------------------------------------------------------------
local function known(who, o, allowed)
  local ok = {}
  for _, k in ipairs(allowed) do ok[k] = true end
  for k in pairs(o) do
    if not ok[k] then fail("%s: unknown option '%s' (known: %s)", who, tostring(k), table.concat(allowed, ', ')) end
  end
  return o
end

--- opts(o, who, allowed): o or {}; an error for a non-table or an unknown key (layers)
function M.opts(o, who, allowed)
  if o == nil then return {} end
  if type(o) ~= 'table' then fail('%s: options must be a table like {%s = ...}, got %s', who, allowed[1], type(o)) end
  return known(who, o, allowed)
end

--- options(who, opts, allowed): opts must be a table whose keys are all in allowed (optimisers)
function M.options(who, opts, allowed)
  if type(opts) ~= 'table' then
    fail('%s: expected a table of options, e.g. %s{...}, got %s', who, who, type(opts))
  end
  return known(who, opts, allowed)
end

-- ---- scheduled values (optimisers) ---------------------------------------------------------
--- a scheduler is any table with a :value() method
function M.is_scheduler(v) return type(v) == 'table' and type(v.value) == 'function' end

--- scheduled(who, name, v, default): a number >= 0 or a scheduler (checked now
-- for numbers, when read for schedulers)
function M.scheduled(who, name, v, default)
  if v == nil then v = default end
  if M.is_scheduler(v) then return v end
  if v == nil then fail('%s: %s is required (a number or a scheduler)', who, name) end
  if type(v) ~= 'number' or not is_finite(v) then
    fail('%s: %s must be a number or a scheduler, got %s', who, name, tostring(v))
  end
  if v < 0 then fail('%s: %s must be >= 0, got %g', who, name, v) end
  return v
end

--- current(who, name, v): the value of a number or scheduler now, checked >= 0
function M.current(who, name, v)
  local x = type(v) == 'number' and v or v:value()
  if type(x) ~= 'number' or not is_finite(x) or x < 0 then
    fail('%s: %s is %s (from its scheduler); it must be a finite number >= 0', who, name, tostring(x))
  end
  return x
end

-- ---- tensors ---------------------------------------------------------------------------------
--- input(x, who, ndim): x a live tensor with ndim dims (layers)
function M.input(x, who, ndim)
  local tensor = require 'gam.tensor'
  tensor.T(x, who, 'input')
  if ndim and x:dim() ~= ndim then
    fail('%s: expected a %d-D input, got shape [%s]', who, ndim, table.concat(x:shape(), ', '))
  end
  return x
end

return M
