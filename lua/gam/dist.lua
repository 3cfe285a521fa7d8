-- gam.dist — data-parallel training over MPI (cpu tensors, one or many
-- machines) and NCCL (cuda tensors), engine/dist.c.
--
--   local dist = gam.dist
--   dist.init()                         -- under mpirun: MPI; alone: rank 0 of 1, no MPI call
--   dist.rank(), dist.size()            -- 0-based rank, world size
--   dist.all_reduce(t, 'sum' | 'mean')  -- in place; returns t
--   dist.broadcast(t, root)             -- in place; returns t
--   dist.barrier()
--   dist.broadcast_parameters(model, root)   -- parameters and buffers
--   dist.broadcast_buffers(model, root)      -- buffers only (BatchNorm running stats)
--
-- Every rank must make the same collective calls in the same order. After
-- dist.init on more than one rank, a Lua error that reaches the top of a
-- gamlua script ends the whole job (MPI_Abort) after printing the message,
-- so that the other ranks never wait for it forever; dist.run(fn) does the
-- same for code run by another host.
local ffi = require 'ffi'
local C = require 'gam.lib'
local tensor = require 'gam.tensor'

local dist = {}
local check, T = tensor.check, tensor.T

local function abort_job(msg)
  if msg then
    io.stderr:write(string.format('gamlua [rank %d of %d]: %s\n', C.gam_dist_rank(), C.gam_dist_size(),
                                  tostring(msg)))
    io.stderr:flush()
  end
  io.stdout:flush()
  C.gam_dist_abort(1)
end

--- dist.init() -> rank, size (a second call does nothing)
function dist.init()
  if C.gam_dist_initialized() == 0 then
    check(C.gam_dist_init())
    -- the gamlua host calls this with the message of an error that ended the script
    local host = rawget(_G, '_GAMLUA')
    if C.gam_dist_size() > 1 and type(host) == 'table' then
      host.on_error = function() abort_job(nil) end
    end
  end
  return C.gam_dist_rank(), C.gam_dist_size()
end

function dist.is_initialized() return C.gam_dist_initialized() ~= 0 end
function dist.built_with_mpi() return C.gam_dist_built_with_mpi() ~= 0 end
--- dist.rank(): 0-based (0 before init); dist.size(): world size (1 before init)
function dist.rank() return C.gam_dist_rank() end
function dist.size() return C.gam_dist_size() end

--- dist.abort(msg): prints msg (naming the rank) and ends every process of the job
function dist.abort(msg) abort_job(msg) end

--- dist.run(fn, ...): calls fn; an error ends the job with its message on every rank
function dist.run(fn, ...)
  local res = {xpcall(fn, debug.traceback, ...)}
  if not res[1] then
    if C.gam_dist_size() > 1 then abort_job(res[2]) end
    error(res[2], 0)
  end
  return unpack(res, 2)
end

local OPS = {sum = 0, mean = 1}

--- dist.all_reduce(t, op): t summed ('sum', the default) or averaged ('mean')
-- over the ranks, in place; returns t
function dist.all_reduce(t, op)
  op = op or 'sum'
  local mean = OPS[op]
  if mean == nil then
    error("dist.all_reduce: op must be 'sum' or 'mean', got " .. tostring(op), 2)
  end
  check(C.gam_dist_all_reduce(T(t, 'dist.all_reduce', 'tensor'), mean))
  return t
end

--- dist.broadcast(t, root): t = root's t on every rank; returns t
function dist.broadcast(t, root)
  root = tensor.int_arg(root or 0, 'dist.broadcast', 'root', 0)
  check(C.gam_dist_broadcast(T(t, 'dist.broadcast', 'tensor'), root))
  return t
end

function dist.barrier() check(C.gam_dist_barrier()) end

--- dist.all_reduce_grad(x) -> Σ_ranks x as a new tensor, differentiable (the
-- gradient flowing back is all-reduced the same way): statistics shared by
-- the ranks inside a model (nn.SyncBatchNorm)
function dist.all_reduce_grad(x)
  return tensor.op(C.gam_dist_all_reduce_sum_grad, T(x, 'dist.all_reduce_grad', 'tensor'))
end

--- dist.sum_numbers({a, b, ...}) -> {sums over the ranks} (host numbers)
function dist.sum_numbers(list)
  local n = #list
  local v = ffi.new('double[?]', math.max(n, 1))
  for i = 1, n do v[i - 1] = list[i] end
  check(C.gam_dist_sum_doubles(v, n))
  local out = {}
  for i = 1, n do out[i] = v[i - 1] end
  return out
end

-- a number standing for an option's value, equal on two ranks when the values are
local function code_of(v)
  if type(v) == 'number' then return v end
  if type(v) == 'boolean' then return v and 1 or 0 end
  if v == nil then return -1e300 end
  local h = 5381
  local s = tostring(v)
  for i = 1, #s do h = (h * 33 + s:byte(i)) % 2147483647 end
  return h
end

--- dist.check_agree(who, entries): entries = {{name, value}, ...}; raises on
-- every rank when some rank has a different value for one of them
function dist.check_agree(who, entries)
  if C.gam_dist_size() == 1 then return end
  local n = #entries
  local v, lo, hi = ffi.new('double[?]', n), ffi.new('double[?]', n), ffi.new('double[?]', n)
  for i, e in ipairs(entries) do v[i - 1] = code_of(e[2]) end
  check(C.gam_dist_min_max(v, n, lo, hi))
  local bad = {}
  for i, e in ipairs(entries) do
    if lo[i - 1] ~= hi[i - 1] then
      bad[#bad + 1] = string.format('%s (rank %d has %s)', e[1], C.gam_dist_rank(), tostring(e[2]))
    end
  end
  if #bad > 0 then
    error(string.format('%s: the %d ranks disagree on %s', who, C.gam_dist_size(),
                        table.concat(bad, ', ')), 0)
  end
end

local function model_tensors(model, who)
  if type(model) ~= 'table' or type(model.named_parameters) ~= 'function' then
    error(who .. ': model must be an nn module', 3)
  end
  return model:named_parameters(), model:named_buffers()
end

--- dist.broadcast_buffers(model, root): every buffer (BatchNorm running
-- statistics) = root's
function dist.broadcast_buffers(model, root)
  local who = 'dist.broadcast_buffers'
  local _, buffers = model_tensors(model, who)
  if C.gam_dist_size() == 1 then return model end
  for _, e in ipairs(buffers) do dist.broadcast(e.tensor, root or 0) end
  return model
end

--- dist.broadcast_parameters(model, root): parameters and buffers = root's.
-- Fails on every rank when the ranks' models differ in their tensors' count
-- or sizes.
function dist.broadcast_parameters(model, root)
  local who = 'dist.broadcast_parameters'
  local params, buffers = model_tensors(model, who)
  local numel = 0
  for _, e in ipairs(params) do numel = numel + e.tensor:numel() end
  local bnumel = 0
  for _, e in ipairs(buffers) do bnumel = bnumel + e.tensor:numel() end
  dist.check_agree(who, {{'the number of parameter tensors', #params}, {'the parameter count', numel},
                         {'the number of buffers', #buffers}, {'the buffer element count', bnumel}})
  if C.gam_dist_size() == 1 then return model end
  local flat = rawget(model, '_flat')
  if flat then
    dist.broadcast(flat, root or 0)
  else
    for _, e in ipairs(params) do dist.broadcast(e.tensor, root or 0) end
  end
  return dist.broadcast_buffers(model, root)
end

return dist
