-- gam.tensor — the Tensor type: FFI cdata over an engine tensor, its methods
-- and operators (printing is in gam.printing), and the scopes that free
-- intermediates deterministically.
--
-- A Lua tensor is a small `gam_handle` cdata holding one reference to an
-- engine tensor. Inside gam.scope(fn) every tensor made is released when fn
-- returns, except those it returns (and those passed to gam.keep); outside any
-- scope a tensor is released when Lua collects its handle. A released handle
-- raises a clear error when used.
local ffi = require 'ffi'

-- The handle's FFI type and metatype can be defined once per process: a
-- second load of this file (package.loaded cleared) gets the first module.
local registry = debug.getregistry()
if registry['gam.tensor'] then return registry['gam.tensor'] end

local C = require 'gam.lib'
local argcheck = require 'gam.argcheck'
local printing = require 'gam.printing'

-- (the gam_handle type is declared by gam.lib)

local M = {}
local Tensor = {}          -- methods
local Handle               -- the ctype
local scopes = {}          -- stack of {handle = true} sets

local DTYPES = {float32 = C.GAM_FLOAT32, int64 = C.GAM_INT64, uint8 = C.GAM_UINT8,
                float = C.GAM_FLOAT32, long = C.GAM_INT64, byte = C.GAM_UINT8}
local DTYPE_NAMES = {[C.GAM_FLOAT32] = 'float32', [C.GAM_INT64] = 'int64', [C.GAM_UINT8] = 'uint8'}
local DEVICES = {cpu = C.GAM_CPU, cuda = C.GAM_CUDA}
local DEVICE_NAMES = {[C.GAM_CPU] = 'cpu', [C.GAM_CUDA] = 'cuda'}
M.DTYPES, M.DEVICES = DTYPES, DEVICES

-- ---- errors and argument checks -------------------------------------------
local function engine_error()
  error(ffi.string(C.gam_last_error()), 0)
end
local function check(rc)
  if rc ~= 0 then engine_error() end
end
M.check = check

local function is_tensor(x)
  return type(x) == 'cdata' and ffi.istype(Handle, x)
end
M.is_tensor = is_tensor

-- The engine tensor of x, or a Lua error naming the op and the argument.
local function T(x, op, what)
  if not is_tensor(x) then
    argcheck.fail('%s: %s must be a tensor, got %s', op, what or 'argument',
                        type(x) == 'cdata' and tostring(ffi.typeof(x)) or type(x))
  end
  local t = x.t
  if t == nil then
    argcheck.fail('%s: %s is a released tensor (freed when its gam.scope ended; '
                        .. 'return it from the scope or gam.keep it)', op, what or 'argument')
  end
  return t
end
M.T = T

-- the generic checks are gam.argcheck's
local int_arg, num_arg, opt_num, dim_arg, shape_arg =
  argcheck.integer, argcheck.num, argcheck.opt_num, argcheck.dim, argcheck.shape
M.int_arg, M.num_arg, M.opt_num, M.dim_arg, M.shape_arg = int_arg, num_arg, opt_num, dim_arg, shape_arg

local function dtype_arg(d, op)
  if d == nil then return C.GAM_FLOAT32 end
  local v = DTYPES[d]
  if not v then argcheck.fail("%s: unknown dtype '%s' (float32, int64 or uint8)", op, tostring(d)) end
  return v
end
local function device_arg(d, op)
  if d == nil then return C.GAM_CPU end
  local v = DEVICES[d]
  if not v then argcheck.fail("%s: unknown device '%s' (cpu or cuda)", op, tostring(d)) end
  return v
end
M.dtype_arg, M.device_arg = dtype_arg, device_arg

-- ---- handles and scopes -----------------------------------------------------
local function finalize(h)
  if h.t ~= nil then
    C.gam_release(h.t)
    h.t = nil
  end
end

-- Wraps an owned engine reference (from an out-pointer) in a Lua tensor.
local function wrap(t)
  if t == nil then return nil end
  local h = ffi.gc(Handle(t), finalize)
  local s = scopes[#scopes]
  if s then s[h] = true end
  return h
end
M.wrap = wrap

local outp = ffi.new('gam_tensor*[1]')
local outp2 = ffi.new('gam_tensor*[1]')
-- op(C.gam_fn, args...) calls fn(out, args...) and wraps the result
local function op(fn, ...)
  check(fn(outp, ...))
  return wrap(outp[0])
end
M.op = op
M.outp, M.outp2 = outp, outp2

-- Releases the engine reference now; the handle stays, marked released.
local function release(h)
  if h.t ~= nil then
    C.gam_release(h.t)
    h.t = nil
    ffi.gc(h, nil)
  end
end

-- Walks the values a scope returns (tables to any depth, each once) and moves
-- the scope's tensors found there into kept; stops once all are found.
local function find_kept(v, list, state)
  if state.left == 0 then return end
  if is_tensor(v) then
    if list[v] and not state.kept[v] then
      state.kept[v] = true
      state.left = state.left - 1
    end
  elseif type(v) == 'table' and not state.seen[v] then
    state.seen[v] = true
    for k, x in pairs(v) do
      find_kept(k, list, state)
      find_kept(x, list, state)
    end
  end
end

-- An error raised inside a scope keeps the traceback of where it happened.
local function add_traceback(e)
  if type(e) == 'string' and not e:find('\nstack traceback:', 1, true) then
    return debug.traceback(e, 2)
  end
  return e
end

local function close_scope(list, ok, ...)
  local count = 0
  for _ in pairs(list) do count = count + 1 end
  local state = {kept = {}, seen = {}, left = count}
  if ok and count > 0 then
    for i = 1, select('#', ...) do find_kept((select(i, ...)), list, state) end
  end
  local parent = scopes[#scopes]
  for h in pairs(list) do
    if state.kept[h] then
      if parent then parent[h] = true end
    else
      release(h)
    end
  end
  if not ok then error((...), 0) end
  return ...
end

--- gam.scope(fn, ...) runs fn(...) and releases every tensor made inside it
-- that fn does not return (tensors anywhere inside returned tables are kept
-- too). On an error the tensors are released and the error goes on.
function M.scope(fn, ...)
  if type(fn) ~= 'function' and not (getmetatable(fn) or {}).__call then
    argcheck.raise('scope: expected a function, got ' .. type(fn))
  end
  local list = {}
  scopes[#scopes + 1] = list
  local depth = #scopes
  local function finish(...)
    for i = #scopes, depth, -1 do scopes[i] = nil end -- also scopes left open by an error
    return close_scope(list, ...)
  end
  return finish(xpcall(fn, add_traceback, ...))
end

local function keep(v, seen)
  if is_tensor(v) then
    for i = #scopes, 1, -1 do scopes[i][v] = nil end
  elseif type(v) == 'table' and not seen[v] then
    seen[v] = true
    for _, x in pairs(v) do keep(x, seen) end
  end
end

--- gam.keep(t): t (or every tensor in a table, at any depth) outlives the
-- scopes it was made in; it is then freed when Lua collects it.
function M.keep(v)
  keep(v, {})
  return v
end

--- gam.release(t): frees t now; later use of t is an error.
function M.release(v)
  if is_tensor(v) then
    for i = #scopes, 1, -1 do scopes[i][v] = nil end
    release(v)
  end
end

function M.scope_depth() return #scopes end

-- ---- grad mode ---------------------------------------------------------------
local function with_grad_mode(flag, fn, ...)
  if type(fn) ~= 'function' and not (getmetatable(fn) or {}).__call then
    argcheck.fail('%s: expected a function, got %s', flag == 0 and 'no_grad' or 'enable_grad',
                        type(fn))
  end
  local prev = C.gam_set_grad_enabled(flag)
  local function finish(ok, ...)
    C.gam_set_grad_enabled(prev)
    if not ok then error((...), 0) end
    return ...
  end
  return finish(xpcall(fn, add_traceback, ...))
end
--- gam.no_grad(fn, ...): runs fn(...) without recording the graph
function M.no_grad(fn, ...) return with_grad_mode(0, fn, ...) end
function M.enable_grad(fn, ...) return with_grad_mode(1, fn, ...) end
function M.is_grad_enabled() return C.gam_is_grad_enabled() ~= 0 end

-- ---- creation -------------------------------------------------------------------
local function opts_of(o, who)
  if o ~= nil and type(o) ~= 'table' then
    argcheck.fail('%s: options must be a table like {dtype = ..., device = ...}', who)
  end
  return o or {}
end

-- split (shape..., opts) where shape may be a table or numbers
local function shape_and_opts(...)
  local n = select('#', ...)
  local first = ...
  if first == nil then return nil, nil end
  if type(first) == 'table' then return first, (select(2, ...)) end
  local shape, opts = {}, nil
  for i = 1, n do -- sizes, then maybe an options table
    local v = select(i, ...)
    if type(v) == 'table' and i == n then opts = v else shape[i] = v end
  end
  return shape, opts
end

-- Tensors made on the cpu (random ones, from data) move to o.device, and
-- then become leaves that require grad if asked to.
local function finish_creation(h, o, op_name)
  local dev = device_arg(o.device, op_name or 'tensor')
  if dev ~= C.GAM_CPU and T(h, 'to', 'tensor').device ~= dev then
    local d = op(C.gam_to_device, T(h, 'to', 'tensor'), dev)
    M.release(h)
    h = d
  end
  if o.requires_grad then h:requires_grad_(true) end
  return h
end

function M.empty(...)
  local s, o = shape_and_opts(...)
  o = opts_of(o, 'empty')
  local buf, n = shape_arg('empty', s)
  return finish_creation(op(C.gam_empty, dtype_arg(o.dtype, 'empty'), device_arg(o.device, 'empty'),
                            n, buf), o, 'empty')
end

local function full(name, s, value, o)
  o = opts_of(o, name)
  local buf, n = shape_arg(name, s)
  num_arg(value, name, 'value')
  return finish_creation(op(C.gam_full, dtype_arg(o.dtype, name), device_arg(o.device, name), n, buf,
                            value), o, name)
end
--- gam.full(shape, value, opts)
function M.full(s, value, o) return full('full', s, value, o) end
--- gam.zeros(shape, opts) or gam.zeros(2, 3, opts); likewise ones
function M.zeros(...)
  local s, o = shape_and_opts(...)
  return full('zeros', s, 0, o)
end
function M.ones(...)
  local s, o = shape_and_opts(...)
  return full('ones', s, 1, o)
end

function M.rand(...)
  local s, o = shape_and_opts(...)
  o = opts_of(o, 'rand')
  local buf, n = shape_arg('rand', s)
  return finish_creation(op(C.gam_rand, n, buf, opt_num(o.low, 0, 'rand', 'low'),
                            opt_num(o.high, 1, 'rand', 'high')), o)
end

function M.randn(...)
  local s, o = shape_and_opts(...)
  o = opts_of(o, 'randn')
  local buf, n = shape_arg('randn', s)
  return finish_creation(op(C.gam_randn, n, buf, opt_num(o.mean, 0, 'randn', 'mean'),
                            opt_num(o.std, 1, 'randn', 'std')), o)
end

--- gam.randint(lo, hi, shape, opts): integers in [lo, hi), int64
function M.randint(lo, hi, s, o)
  int_arg(lo, 'randint', 'low')
  int_arg(hi, 'randint', 'high')
  local buf, n = shape_arg('randint', s)
  return finish_creation(op(C.gam_randint, n, buf, lo, hi), opts_of(o, 'randint'))
end

--- gam.randperm(n): a permutation of 0..n-1, int64
function M.randperm(n, o)
  int_arg(n, 'randperm', 'n', 0)
  return finish_creation(op(C.gam_randperm, n), opts_of(o, 'randperm'))
end

function M.arange(a, b, step, o)
  if type(step) == 'table' then o, step = step, nil end
  if type(b) == 'table' then o, b = b, nil end
  if b == nil then a, b = 0, a end
  num_arg(a, 'arange', 'start'); num_arg(b, 'arange', 'stop')
  step = opt_num(step, 1, 'arange', 'step')
  o = opts_of(o, 'arange')
  return finish_creation(op(C.gam_arange, dtype_arg(o.dtype, 'arange'), a, b, step), o)
end

function M.manual_seed(seed)
  int_arg(seed, 'manual_seed', 'seed', 0)
  check(C.gam_manual_seed(seed))
end

function M.rng_state()
  local s = ffi.new('uint64_t[2]')
  check(C.gam_rng_get_state(s))
  return {tonumber(bit.rshift(s[0], 32)), tonumber(bit.band(s[0], 0xffffffffULL)),
          tonumber(bit.rshift(s[1], 32)), tonumber(bit.band(s[1], 0xffffffffULL))}
end

function M.set_rng_state(st)
  if type(st) ~= 'table' or #st ~= 4 then argcheck.raise('set_rng_state: expected the table from gam.rng_state()') end
  for i = 1, 4 do int_arg(st[i], 'set_rng_state', 'word ' .. i, 0, 2 ^ 32 - 1) end
  local s = ffi.new('uint64_t[2]')
  s[0] = bit.bor(bit.lshift(ffi.cast('uint64_t', st[1]), 32), ffi.cast('uint64_t', st[2]))
  s[1] = bit.bor(bit.lshift(ffi.cast('uint64_t', st[3]), 32), ffi.cast('uint64_t', st[4]))
  check(C.gam_rng_set_state(s))
end

-- nested Lua table -> flat list of numbers and the shape. info.leaf is the
-- depth at which numbers were found first: every number must sit there.
local function flatten_data(data, shape, depth, out, who, info)
  local ragged = who .. ': ragged nested table (numbers and tables at the same depth, or rows of different depth)'
  if type(data) == 'number' or type(data) == 'boolean' then
    info.leaf = info.leaf or depth
    if depth ~= info.leaf then argcheck.raise(ragged) end
    out[#out + 1] = type(data) == 'boolean' and (data and 1 or 0) or data
    return
  end
  if type(data) ~= 'table' then
    argcheck.fail('%s: expected numbers in nested tables, found a %s', who, type(data))
  end
  if info.leaf and depth >= info.leaf then argcheck.raise(ragged) end
  if depth > 8 then argcheck.raise(who .. ': a tensor has at most 8 dims, the table nests deeper') end
  local n = #data
  if shape[depth] == nil then
    shape[depth] = n
  elseif shape[depth] ~= n then
    argcheck.fail('%s: ragged nested table: dim %d has sizes %d and %d', who, depth, shape[depth], n)
  end
  for i = 1, n do flatten_data(data[i], shape, depth + 1, out, who, info) end
end

local CTYPES = {[C.GAM_FLOAT32] = 'float[?]', [C.GAM_INT64] = 'int64_t[?]', [C.GAM_UINT8] = 'uint8_t[?]'}
M.CTYPES = CTYPES

function M.tensor(data, o)
  o = opts_of(o, 'tensor')
  if is_tensor(data) then return finish_creation(data:clone(), o) end
  local dt = dtype_arg(o.dtype, 'tensor')
  local shape, flat = {}, {}
  if type(data) == 'number' or type(data) == 'boolean' then
    flat[1] = data == true and 1 or data == false and 0 or data
  else
    local info = {}
    flatten_data(data, shape, 1, flat, 'tensor', info)
    -- a table of empty tables ({{}, {}}) has no numbers: its shape is what was seen
    if #shape == 0 then shape = {0} end
    local numel = 1
    for _, v in ipairs(shape) do numel = numel * v end
    if numel ~= #flat then argcheck.raise('tensor: ragged nested table (rows of different depth)') end
  end
  local buf = ffi.new(CTYPES[dt], math.max(#flat, 1))
  for i = 1, #flat do buf[i - 1] = flat[i] end
  local sb, n = shape_arg('tensor', shape)
  return finish_creation(op(C.gam_from_data, dt, n, sb, buf), o)
end

--- gam.from_buffer(ptr, shape, dtype): a tensor copied from a C buffer
function M.from_buffer(ptr, shape, dtype)
  if type(ptr) ~= 'cdata' then
    argcheck.raise('from_buffer: expected a pointer (cdata) to the data, got ' .. type(ptr))
  end
  local sb, n = shape_arg('from_buffer', shape)
  return op(C.gam_from_data, dtype_arg(dtype, 'from_buffer'), n, sb, ptr)
end

function M.memory()
  local s = ffi.new('gam_memory_stats')
  C.gam_memory(s)
  return {live_tensors = tonumber(s.live_tensors), live_bytes = tonumber(s.live_bytes),
          peak_bytes = tonumber(s.peak_bytes), cached_bytes = tonumber(s.cached_bytes),
          device_live_bytes = tonumber(s.device_live_bytes),
          device_cached_bytes = tonumber(s.device_cached_bytes),
          device_workspace_bytes = tonumber(s.device_workspace_bytes)}
end
function M.empty_cache() check(C.gam_empty_cache()) end

--- gam.cuda_built(): libgam was compiled with the CUDA backend
function M.cuda_built() return C.gam_cuda_built() ~= 0 end
--- gam.cuda_available(): a CUDA device can be used (false, quietly, without one)
function M.cuda_available() return C.gam_cuda_available() ~= 0 end
--- gam.cuda_info(): the CUDA stack (versions as strings, device 0's name,
--- capability and memory); nil and the reason in a build without CUDA
function M.cuda_info()
  local s = ffi.new('gam_cuda_info')
  if C.gam_cuda_info_get(s) ~= 0 then return nil, ffi.string(C.gam_last_error()) end
  local function v(x)
    return x > 0 and string.format('%d.%d', math.floor(x / 1000), math.floor(x % 1000 / 10)) or 'unknown'
  end
  local function dnn(x)
    return x > 0 and string.format('%d.%d.%d', math.floor(x / 10000), math.floor(x % 10000 / 100), x % 100) or 'unknown'
  end
  return {driver = v(s.driver), runtime = v(s.runtime), cudnn = dnn(s.cudnn), cudnn_compiled = dnn(s.cudnn_compiled),
          driver_number = s.driver, runtime_number = s.runtime, devices = s.devices, name = ffi.string(s.name),
          capability = s.devices > 0 and string.format('%d.%d', s.cc_major, s.cc_minor) or nil,
          memory_bytes = tonumber(s.memory_bytes)}
end
--- gam.cuda_host_waits(): how many times the host has waited for the device so far
function M.cuda_host_waits() return tonumber(C.gam_cuda_host_waits()) end
--- gam.synchronize(): waits for the device's queued work (timing); no-op without one
function M.synchronize() check(C.gam_cuda_synchronize()) end

function M.set_num_threads(n)
  int_arg(n, 'set_num_threads', 'n', 1, 4096)
  check(C.gam_set_num_threads(n))
end
function M.get_num_threads() return C.gam_get_num_threads() end

-- ---- Tensor methods ----------------------------------------------------------------
function Tensor:dim() return T(self, 'dim', 'tensor').ndim end
Tensor.ndim = Tensor.dim
function Tensor:numel() return tonumber(T(self, 'numel', 'tensor').numel) end
function Tensor:dtype() return DTYPE_NAMES[T(self, 'dtype', 'tensor').dtype] end
function Tensor:device() return DEVICE_NAMES[T(self, 'device', 'tensor').device] end
function Tensor:is_alive() return self.t ~= nil end

function Tensor:size(d)
  local t = T(self, 'size', 'tensor')
  if d == nil then return self:shape() end
  return tonumber(t.shape[dim_arg(d, t.ndim, 'size')])
end

function Tensor:shape()
  local t = T(self, 'shape', 'tensor')
  local s = {}
  for i = 0, t.ndim - 1 do s[i + 1] = tonumber(t.shape[i]) end
  return s
end

function Tensor:item()
  local v = ffi.new('double[1]')
  check(C.gam_item(T(self, 'item', 'tensor'), v))
  return v[0]
end

-- contiguous data as a ctype array (a copy). The engine pointer is fetched
-- again after the allocation, so the handle stays anchored across it.
function Tensor:data_copy()
  local t = T(self, 'data', 'tensor')
  local n = tonumber(t.numel)
  local buf = ffi.new(CTYPES[t.dtype], math.max(n, 1))
  check(C.gam_copy_to_host(T(self, 'data', 'tensor'), buf, ffi.sizeof(buf)))
  return buf, n
end

function Tensor:totable()
  local t = T(self, 'totable', 'tensor')
  local buf, n = self:data_copy()
  local shape = self:shape()
  local isint = t.dtype ~= C.GAM_FLOAT32
  local pos = 0
  local function build(d)
    if d > #shape then
      local v = buf[pos]; pos = pos + 1
      return isint and tonumber(v) or v
    end
    local r = {}
    for i = 1, shape[d] do r[i] = build(d + 1) end
    return r
  end
  if #shape == 0 then return n > 0 and (isint and tonumber(buf[0]) or buf[0]) or nil end
  return build(1)
end

-- flat Lua array of the values
function Tensor:tolist()
  local buf, n = self:data_copy()
  local r = {}
  for i = 1, n do r[i] = tonumber(buf[i - 1]) end
  return r
end

function Tensor:requires_grad_(flag)
  if flag == nil then flag = true end
  check(C.gam_set_requires_grad(T(self, 'requires_grad_', 'tensor'), flag and 1 or 0))
  return self
end

function Tensor:backward(grad)
  local g = grad ~= nil and T(grad, 'backward', 'gradient') or nil
  check(C.gam_backward(T(self, 'backward', 'tensor'), g))
end

function Tensor:detach() return op(C.gam_detach, T(self, 'detach', 'tensor')) end
function Tensor:grad_fn()
  local n = C.gam_grad_fn_name(T(self, 'grad_fn', 'tensor'))
  return n ~= nil and ffi.string(n) or nil
end

function Tensor:keep() return M.keep(self) end

-- properties read as fields: t.grad, t.requires_grad
local properties = {
  grad = function(self)
    check(C.gam_get_grad(outp, T(self, 'grad', 'tensor')))
    return wrap(outp[0])
  end,
  requires_grad = function(self) return T(self, 'requires_grad', 'tensor').requires_grad ~= 0 end,
}

-- ---- views and copies, elementwise, reductions (gam.tensor_ops) -----------------------
require('gam.tensor_ops'){ffi = ffi, C = C, argcheck = argcheck, M = M, Tensor = Tensor, DTYPES = DTYPES,
                          DEVICES = DEVICES, check = check, T = T, wrap = wrap, op = op, outp = outp,
                          outp2 = outp2, int_arg = int_arg, num_arg = num_arg, opt_num = opt_num,
                          dim_arg = dim_arg, shape_arg = shape_arg}

-- ---- printing (gam.printing) ------------------------------------------------------------
local PTRTYPES = {[C.GAM_FLOAT32] = 'float *', [C.GAM_INT64] = 'int64_t *', [C.GAM_UINT8] = 'uint8_t *'}
function Tensor:__tostring_impl()
  if self.t == nil then return 'tensor(<released>)' end
  local t = self.t
  local buf -- CPU tensors are read in place: only the values shown are touched
  if t.device == C.GAM_CPU then
    buf = ffi.cast(PTRTYPES[t.dtype], t.storage.data) + t.offset
  else
    buf = self:data_copy()
  end
  local shape = self:shape()
  local suffix = string.format('dtype=%s, device=%s', DTYPE_NAMES[t.dtype], DEVICE_NAMES[t.device])
  if #shape > 0 then suffix = 'shape=[' .. table.concat(shape, ', ') .. '], ' .. suffix end
  if t.requires_grad ~= 0 then
    local gf = C.gam_grad_fn_name(t)
    suffix = suffix .. (gf ~= nil and (', grad_fn=' .. ffi.string(gf)) or ', requires_grad=true')
  end
  local isint = t.dtype ~= C.GAM_FLOAT32
  local s = printing.format{shape = shape, isint = isint, suffix = suffix,
                            get = function(i) return tonumber(buf[i]) end}
  assert(self.t == t) -- keeps the handle (and so the data) alive while printing
  return s
end

-- ---- the metatype -----------------------------------------------------------------------
local mt = {
  __index = function(self, k)
    local m = Tensor[k]
    if m ~= nil then return m end
    local p = properties[k]
    if p then return p(self) end
    if type(k) == 'number' then return self:select(k) end
    return nil
  end,
  __newindex = function(self, k, v)
    if k == 'grad' then
      check(C.gam_set_grad(T(self, 'grad', 'tensor'), v ~= nil and T(v, 'grad', 'gradient') or nil))
    elseif k == 'requires_grad' then
      self:requires_grad_(v)
    else
      argcheck.raise("tensor: cannot set field '" .. tostring(k) .. "'")
    end
  end,
  __add = function(a, b) return Tensor.add(a, b) end,
  __sub = function(a, b) return Tensor.sub(a, b) end,
  __mul = function(a, b) return Tensor.mul(a, b) end,
  __div = function(a, b) return Tensor.div(a, b) end,
  __unm = function(a) return Tensor.neg(a) end,
  __pow = function(a, p)
    if type(a) == 'number' then argcheck.raise('pow: number ^ tensor is not supported') end
    return Tensor.pow(a, p)
  end,
  __len = function(self) return self:size(1) end,
  __tostring = function(self) return Tensor.__tostring_impl(self) end,
}
Handle = ffi.metatype('gam_handle', mt)
-- x:t() finds the handle's field t (the engine pointer) before the method, so
-- calling that pointer with the handle transposes.
ffi.metatype('gam_tensor', {__call = function(_, self) return Tensor.transpose(self) end})

M.Tensor = Tensor
M.Handle = Handle
registry['gam.tensor'] = M
M.DTYPE_NAMES, M.DEVICE_NAMES = DTYPE_NAMES, DEVICE_NAMES
return M
