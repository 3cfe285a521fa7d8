-- gam.tensor_ops — the Tensor methods that make or change tensors through the
-- engine's ops: views and copies, elementwise arithmetic, reductions, matmul.
-- gam.tensor defines the Tensor type, its handles and scopes, and calls this
-- file once with its internals (I), so that both halves share one set of
-- argument checks and one way of wrapping the engine's results.
return function(I)
local ffi, C, argcheck, M, Tensor = I.ffi, I.C, I.argcheck, I.M, I.Tensor
local DTYPES, DEVICES = I.DTYPES, I.DEVICES
local check, T, wrap, op, outp, outp2 = I.check, I.T, I.wrap, I.op, I.outp, I.outp2
local int_arg, num_arg, opt_num, dim_arg, shape_arg = I.int_arg, I.num_arg, I.opt_num, I.dim_arg, I.shape_arg
-- ---- views and copies ----------------------------------------------------------------
function Tensor:reshape(...)
  local t = T(self, 'reshape', 'tensor')
  local buf, n = shape_arg('reshape', ...)
  return op(C.gam_reshape, t, n, buf)
end
Tensor.view = Tensor.reshape

function Tensor:flatten(s, e)
  local t = T(self, 'flatten', 'tensor')
  if t.ndim == 0 then return self:reshape(1) end
  s = dim_arg(s or 1, t.ndim, 'flatten')
  e = dim_arg(e or -1, t.ndim, 'flatten')
  return op(C.gam_flatten, t, s, e)
end

--- t:narrow(1, start, length): rows start..start+length-1 (1-based), sharing storage
function Tensor:narrow(d, start, length)
  local t = T(self, 'narrow', 'tensor')
  if d ~= 1 then argcheck.raise('narrow: only dim 1 can be sliced (it shares storage), got dim ' .. tostring(d)) end
  int_arg(start, 'narrow', 'start', 1)
  int_arg(length, 'narrow', 'length', 0)
  return op(C.gam_narrow, t, start - 1, length)
end

--- t:select(i) / t[i]: row i (1-based) of dim 1, sharing storage
function Tensor:select(i)
  local t = T(self, 'select', 'tensor')
  int_arg(i, 'select', 'index')
  return op(C.gam_select, t, i - 1)
end

function Tensor:clone() return op(C.gam_clone, T(self, 'clone', 'tensor')) end
function Tensor:copy_(src)
  check(C.gam_copy_(T(self, 'copy_', 'destination'), T(src, 'copy_', 'source')))
  return self
end
function Tensor:fill_(v)
  local t = T(self, 'fill_', 'tensor')
  num_arg(v, 'fill_', 'value')
  check(C.gam_fill_(t, v))
  return self
end
function Tensor:zero_() return self:fill_(0) end
function Tensor:add_(other, alpha)
  local t = T(self, 'add_', 'destination')
  alpha = opt_num(alpha, 1, 'add_', 'alpha')
  check(C.gam_add_(t, T(other, 'add_', 'source'), alpha))
  return self
end

function Tensor:t() return op(C.gam_transpose, T(self, 'transpose', 'tensor')) end
Tensor.transpose = Tensor.t

function Tensor:to(what)
  local t = T(self, 'to', 'tensor')
  if DEVICES[what] then return op(C.gam_to_device, t, DEVICES[what]) end
  if DTYPES[what] then return op(C.gam_to_dtype, t, DTYPES[what]) end
  argcheck.fail("to: expected a device ('cpu', 'cuda') or a dtype, got %s", tostring(what))
end
function Tensor:float() return op(C.gam_to_dtype, T(self, 'float', 'tensor'), C.GAM_FLOAT32) end
function Tensor:long() return op(C.gam_to_dtype, T(self, 'long', 'tensor'), C.GAM_INT64) end
function Tensor:byte() return op(C.gam_to_dtype, T(self, 'byte', 'tensor'), C.GAM_UINT8) end
function Tensor:cpu() return self:to('cpu') end
function Tensor:cuda() return self:to('cuda') end

function Tensor:allclose(other, rtol, atol)
  T(self, 'allclose', 'tensor')
  T(other, 'allclose', 'other')
  rtol, atol = opt_num(rtol, 1e-5, 'allclose', 'rtol'), opt_num(atol, 1e-8, 'allclose', 'atol')
  local r = ffi.new('int[1]')
  check(C.gam_allclose(T(self, 'allclose', 'tensor'), T(other, 'allclose', 'other'), rtol, atol, r))
  return r[0] ~= 0
end

function M.cat(list, d)
  if type(list) ~= 'table' or #list == 0 then argcheck.raise('cat: expected a non-empty table of tensors') end
  local arr = ffi.new('gam_tensor*[?]', #list)
  for i = 1, #list do arr[i - 1] = T(list[i], 'cat', 'tensor ' .. i) end
  local nd = arr[0].ndim
  return op(C.gam_cat, arr, #list, dim_arg(d or 1, nd, 'cat'))
end

-- ---- elementwise ---------------------------------------------------------------------
-- a op b where either side may be a number
local function binary(name, fn, scalar_fn, rscalar_fn)
  return function(a, b)
    if type(b) == 'number' then return scalar_fn(T(a, name, 'first operand'), b) end
    if type(a) == 'number' then return rscalar_fn(T(b, name, 'second operand'), a) end
    return op(fn, T(a, name, 'first operand'), T(b, name, 'second operand'))
  end
end

local function S(fn) return function(t, s) return op(fn, t, s) end end
Tensor.add = binary('add', C.gam_add, S(C.gam_add_scalar), S(C.gam_add_scalar))
Tensor.sub = binary('sub', C.gam_sub, function(t, s) return op(C.gam_add_scalar, t, -s) end,
                    S(C.gam_rsub_scalar))
Tensor.mul = binary('mul', C.gam_mul, S(C.gam_mul_scalar), S(C.gam_mul_scalar))
Tensor.div = binary('div', C.gam_div, function(t, s) return op(C.gam_mul_scalar, t, 1 / s) end,
                    S(C.gam_rdiv_scalar))

function Tensor:pow(p)
  local t = T(self, 'pow', 'tensor')
  num_arg(p, 'pow', 'exponent')
  return op(C.gam_pow_scalar, t, p)
end

for _, name in ipairs {'neg', 'exp', 'log', 'sqrt', 'abs', 'relu'} do
  local fn = C['gam_' .. name]
  Tensor[name] = function(self) return op(fn, T(self, name, 'input')) end
end

-- ---- reductions -----------------------------------------------------------------------
function Tensor:sum(d, keepdim)
  local t = T(self, 'sum', 'tensor')
  if d == nil then return op(C.gam_sum, t) end
  return op(C.gam_sum_dim, t, dim_arg(d, t.ndim, 'sum'), keepdim and 1 or 0)
end

function Tensor:mean(d, keepdim)
  local t = T(self, 'mean', 'tensor')
  if d == nil then return op(C.gam_mean, t) end
  return op(C.gam_mean_dim, t, dim_arg(d, t.ndim, 'mean'), keepdim and 1 or 0)
end

--- t:max() -> scalar tensor; t:max(d, keepdim) -> values, indices (0-based int64)
function Tensor:max(d, keepdim)
  local t = T(self, 'max', 'tensor')
  if d == nil then return op(C.gam_max, t) end
  check(C.gam_max_dim(outp, outp2, t, dim_arg(d, t.ndim, 'max'), keepdim and 1 or 0))
  local v, i = outp[0], outp2[0]
  return wrap(v), wrap(i)
end

function Tensor:argmax(d, keepdim)
  local t = T(self, 'argmax', 'tensor')
  return op(C.gam_argmax, t, dim_arg(d or -1, t.ndim, 'argmax'), keepdim and 1 or 0)
end

function Tensor:softmax(d)
  local t = T(self, 'softmax', 'input')
  return op(C.gam_softmax, t, dim_arg(d or -1, t.ndim, 'softmax'))
end
function Tensor:log_softmax(d)
  local t = T(self, 'log_softmax', 'input')
  return op(C.gam_log_softmax, t, dim_arg(d or -1, t.ndim, 'log_softmax'))
end

function Tensor:gather(d, index)
  local t = T(self, 'gather', 'input')
  return op(C.gam_gather, t, dim_arg(d, t.ndim, 'gather'), T(index, 'gather', 'index'))
end

function Tensor:matmul(b)
  return op(C.gam_matmul, T(self, 'matmul', 'first operand'), T(b, 'matmul', 'second operand'))
end
end
