-- bench_dist.lua — data-parallel throughput of gamlua over MPI on one machine:
-- steps per second of 1 and 2 processes (1 thread each, batch per process
-- fixed, as with DDP), the time per step spent in collectives, and the
-- scaling efficiency = samples/s of 2 processes / (2 × samples/s of 1), for
-- sgd and gam on cnn_small (28×28 grey inputs, synthetic data).
--
--   gamlua scripts/bench_dist.lua [--steps N] [--batch-size B] [--opts sgd,gam]
--
-- It starts `mpirun -np 1` and `mpirun -np 2` of itself (--worker); each rank
-- times its steps after 2 warm-up steps. The collective time is measured
-- around every dist.all_reduce / dist.broadcast call of the step, so it
-- includes waiting for the slower rank; the last line is one all-reduce of a
-- cnn_small-sized gradient alone (after a barrier): the transport's own cost.
-- Figures on a shared machine are noisy.
local here = debug.getinfo(1, 'S').source:sub(2):match('^(.*[/\\])') or './'
local bench = dofile(here .. 'bench_util.lua')

local opts = {steps = 20, ['batch-size'] = 64, opts = 'sgd,gam', worker = false, mpirun = 'mpirun'}
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == '--help' or a == '-h' then bench.print_help(debug.getinfo(1, 'S').source:sub(2)) end
  local k = a:match('^%-%-(.+)$')
  if k == 'worker' then opts.worker = true
  elseif k and opts[k] ~= nil and arg[i + 1] then
    opts[k] = type(opts[k]) == 'number' and tonumber(arg[i + 1]) or arg[i + 1]
    if opts[k] == nil then io.stderr:write('bench_dist: --' .. k .. ' needs a number\n') os.exit(1) end
    i = i + 1
  else
    io.stderr:write('bench_dist: unknown argument ' .. a .. ' (try --help)\n')
    os.exit(1)
  end
  i = i + 1
end

if opts.worker then
  local gam = require 'gam'
  local dist, optim, F = gam.dist, gam.optim, gam.F
  dist.init()
  gam.set_num_threads(1)
  local util = require 'gam.optim.util'
  local coll = 0
  for _, name in ipairs {'all_reduce', 'broadcast'} do
    local f = dist[name]
    dist[name] = function(...)
      local t0 = util.now()
      local r = f(...)
      coll = coll + util.now() - t0
      return r
    end
  end
  local B = opts['batch-size']
  for kind in opts.opts:gmatch('[^,]+') do
    gam.manual_seed(0)
    local model = gam.models.cnn_small{num_classes = 10}
    model:flat_parameters()
    dist.broadcast_parameters(model, 0)
    local base = optim.SGD{params = model:parameters(), lr = 0.05, momentum = 0.9, weight_decay = 5e-4}
    local opt = kind == 'gam' and optim.GAM{base = base, model = model} or base
    local function loss_fn(pred, y) return F.cross_entropy(pred, y):mean() end
    gam.manual_seed(1 + dist.rank())
    local x, y = gam.randn({B, 1, 28, 28}), gam.randint(0, 10, {B})
    local function step()
      if kind == 'gam' then
        opt:set_closure(loss_fn, x, y)
        opt:step()
      else
        gam.scope(function()
          opt:zero_grad()
          loss_fn(model(x), y):backward()
        end)
        opt:step()
      end
    end
    for _ = 1, 2 do step() end
    dist.barrier()
    coll = 0
    local t0 = util.now()
    for _ = 1, opts.steps do step() end
    dist.barrier()
    local dt = util.now() - t0
    local c = dist.sum_numbers({coll})[1] / dist.size()
    if dist.rank() == 0 then
      print(string.format('RESULT %s %d %.4f %.5f', kind, dist.size(), opts.steps / dt, c / opts.steps))
    end
  end
  -- the transport alone: all-reduces of a cnn_small-sized gradient after a barrier
  local v = gam.randn({gam.models.cnn_small{num_classes = 10}:num_parameters()})
  dist.barrier()
  local t0, reps = util.now(), 20
  for _ = 1, reps do dist.all_reduce(v, 'mean') end
  dist.barrier()
  if dist.rank() == 0 then
    print(string.format('ALLREDUCE %d %d %.5f', dist.size(), v:numel(), (util.now() - t0) / reps))
  end
  os.exit(0)
end

-- the driver: one mpirun per process count
local self_path = debug.getinfo(1, 'S').source:sub(2)
local gamlua = arg[-1] or 'gamlua'
local results = {}
for _, np in ipairs {1, 2} do
  local cmd = string.format('OMP_NUM_THREADS=1 %s --allow-run-as-root --bind-to core -np %d '
                            .. '-x OMP_NUM_THREADS %s %s --worker --steps %d --batch-size %d --opts %s 2>&1',
                            opts.mpirun, np, gamlua, self_path, opts.steps, opts['batch-size'], opts.opts)
  local p = io.popen(cmd)
  local out = p:read('*a')
  p:close()
  local found = false
  local np_, numel, ar = out:match('ALLREDUCE (%d+) (%d+) (%S+)')
  if np_ == '2' then results.allreduce = {tonumber(numel), tonumber(ar)} end
  for kind, n, sps, cs in out:gmatch('RESULT (%S+) (%d+) (%S+) (%S+)') do
    results[kind] = results[kind] or {}
    results[kind][tonumber(n)] = {tonumber(sps), tonumber(cs)}
    found = true
  end
  if not found then
    io.stderr:write('bench_dist: no result from ' .. cmd .. '\n' .. out .. '\n')
    os.exit(1)
  end
end

print(string.format('cnn_small, batch %d per process, 1 thread per process, %d timed steps',
                    opts['batch-size'], opts.steps))
print('| optimiser | processes | steps/s | samples/s | collectives ms/step | scaling efficiency |')
print('|---|---|---|---|---|---|')
for kind in opts.opts:gmatch('[^,]+') do
  local r = results[kind]
  for _, np in ipairs {1, 2} do
    local sps, cs = r[np][1], r[np][2]
    local eff = np == 1 and '1 (baseline)' or string.format('%.2f', sps / r[1][1])
    print(string.format('| %s | %d | %.2f | %.1f | %.2f | %s |', kind, np, sps, sps * np * opts['batch-size'],
                        cs * 1e3, eff))
  end
end
if results.allreduce then
  print(string.format('one all-reduce (mean) of %d floats between 2 processes: %.2f ms',
                      results.allreduce[1], results.allreduce[2] * 1e3))
end
