-- gam.optim.util — argument checks, scheduled values and a wall clock shared by
-- the optimisers and schedulers.
local M = {}

M.XI = 1e-12   -- ξ: keeps every normalisation finite, as in the reference code

--- M.check_options(who, opts, allowed): opts must be a table whose keys are all in allowed
function M.check_options(who, opts, allowed)
  if type(opts) ~= 'table' then
    error(string.format('%s: expected a table of options, e.g. %s{...}, got %s', who, who, type(opts)), 3)
  end
  local ok = {}
  for _, k in ipairs(allowed) do ok[k] = true end
  for k in pairs(opts) do
    if not ok[k] then
      error(string.format("%s: unknown option '%s' (known: %s)", who, tostring(k), table.concat(allowed, ', ')), 3)
    end
  end
  return opts
end

local function is_finite(v) return v == v and v ~= math.huge and v ~= -math.huge end
M.is_finite = is_finite

--- a scheduler is any table with a :value() method
function M.is_scheduler(v)
  return type(v) == 'table' and type(v.value) == 'function'
end

--- M.value(v): the current value of a number or a scheduler
function M.value(v)
  if type(v) == 'number' then return v end
  return v:value()
end

--- M.number(who, name, v, lo, default): a finite number >= lo (lo may be nil)
function M.number(who, name, v, lo, default)
  if v == nil then v = default end
  if type(v) ~= 'number' or not is_finite(v) then
    error(string.format('%s: %s must be a finite number, got %s', who, name, tostring(v)), 3)
  end
  if lo and v < lo then
    error(string.format('%s: %s must be >= %g, got %g', who, name, lo, v), 3)
  end
  return v
end

--- M.scheduled(who, name, v, default): a number >= 0 or a scheduler (checked now
-- for numbers, when read for schedulers)
function M.scheduled(who, name, v, default)
  if v == nil then v = default end
  if M.is_scheduler(v) then return v end
  if v == nil then error(string.format('%s: %s is required (a number or a scheduler)', who, name), 3) end
  if type(v) ~= 'number' or not is_finite(v) then
    error(string.format('%s: %s must be a number or a scheduler, got %s', who, name, tostring(v)), 3)
  end
  if v < 0 then error(string.format('%s: %s must be >= 0, got %g', who, name, v), 3) end
  return v
end

--- M.current(who, name, v): the value of a number or scheduler now, checked >= 0
function M.current(who, name, v)
  local x = M.value(v)
  if type(x) ~= 'number' or not is_finite(x) or x < 0 then
    error(string.format('%s: %s is %s (from its scheduler); it must be a finite number >= 0', who, name,
                        tostring(x)), 3)
  end
  return x
end

function M.boolean(who, name, v, default)
  if v == nil then return default end
  if type(v) ~= 'boolean' then
    error(string.format('%s: %s must be true or false, got %s', who, name, tostring(v)), 3)
  end
  return v
end

-- ---- wall clock -------------------------------------------------------------------
--- M.now(): seconds from a monotonic clock (gam.clock)
M.now = require('gam.sys').clock

return M
