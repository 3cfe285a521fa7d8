-- bench_layers.lua — forward+backward time of resnet18_c and cnn_small on the
-- CPU, against the same networks in PyTorch (scripts/torch_peer.py, /usr/bin/python3 with Debian's
-- python3-torch) run by this script with the same thread count.
--
--   gamlua scripts/bench_layers.lua [--threads N] [--batches 32,128]
--                                   [--models resnet18_c,cnn_small] [--iters K] [--no-torch]
--                                   [--winograd] [--cpu-time]
--
-- One iteration: logits = model(x) in training mode (batch-norm statistics),
-- loss = mean cross-entropy, loss:backward(), gradients zeroed in place.
-- Prints the median time per iteration of each side and the ratio
-- gamlua / PyTorch (below 1 means gamlua is faster). --winograd runs gamlua's
-- 3x3 stride-1 convolutions through oneDNN's Winograd kernels (F.set_conv_algorithm).
-- Medians damp the noise of a shared machine, but numbers from a busy machine
-- are still only indicative. --cpu-time measures process CPU time instead of
-- wall time on both sides: with --threads 1 it barely moves when other
-- processes compete for the cores (with more threads it counts spinning too).
local ffi = require 'ffi'
local gam = require 'gam'
local SCRIPT = debug.getinfo(1, 'S').source:sub(2)
local bench = dofile((SCRIPT:match('^(.*[/\\])') or '') .. 'bench_util.lua')
local F = gam.F

pcall(ffi.cdef, [[
typedef struct { long tv_sec; long tv_nsec; } gam_bench_timespec;
int clock_gettime(int clk, gam_bench_timespec *ts);
]])
local ts = ffi.new('gam_bench_timespec')
local CLOCK_MONOTONIC, CLOCK_PROCESS_CPUTIME_ID = 1, 2
local clock = CLOCK_MONOTONIC
local function now()
  ffi.C.clock_gettime(clock, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

-- ---- options -----------------------------------------------------------------------
local cli = dofile((SCRIPT:match('^(.*[/\\])') or '') .. 'cli.lua')
local FLAGS = {   -- {name, kind, default, help [, auto]} (scripts/cli.lua)
  {'threads', 'int', gam.get_num_threads(), 'threads of both sides'},
  {'batches', 'ints', {32, 128}, 'batch sizes'},
  {'models', 'strings', {'resnet18_c', 'cnn_small'}, 'networks'},
  {'iters', 'int', nil, 'timed iterations per case', 'per model and batch'},
  {'no-torch', 'bool', false, 'gamlua only, no PyTorch peer'},
  {'winograd', 'bool', false, "3x3 stride-1 convolutions through oneDNN's Winograd kernels"},
  {'cpu-time', 'bool', false, 'measure process CPU time instead of wall time'},
}
local a = cli.parse {name = 'bench_layers', flags = FLAGS, argv = arg, description = cli.header(SCRIPT)}
local opt = {threads = a.threads, batches = a.batches, models = a.models, iters = a.iters, torch = not a['no-torch'],
             winograd = a.winograd, cpu_time = a['cpu-time']}
for _, m in ipairs(opt.models) do
  if m ~= 'resnet18_c' and m ~= 'cnn_small' then cli.fail('bench_layers', "--models: unknown model '" .. m .. "'") end
end
if opt.threads < 1 then cli.fail('bench_layers', '--threads must be at least 1') end
gam.set_num_threads(opt.threads)
if opt.winograd then F.set_conv_algorithm('winograd') end
if opt.cpu_time then clock = CLOCK_PROCESS_CPUTIME_ID end

local SPEC = {
  resnet18_c = {input = {3, 32, 32}, iters = {[32] = 6, [128] = 3}},
  cnn_small = {input = {1, 28, 28}, iters = {[32] = 30, [128] = 10}},
}
local function iters_for(name, batch)
  return opt.iters or SPEC[name].iters[batch] or 5
end

-- ---- gamlua ------------------------------------------------------------------------
local function bench_gam(name, batch, iters)
  gam.manual_seed(0)
  local model = gam.models[name]{num_classes = 10}
  model:train()
  local shape = {batch}
  for _, s in ipairs(SPEC[name].input) do shape[#shape + 1] = s end
  local x = gam.randn(shape)
  local y = gam.randint(0, 10, {batch})
  local function step()
    gam.scope(function()
      local loss = F.cross_entropy(model(x), y):mean()
      loss:backward()
    end)
    model:zero_grad()
  end
  step() -- warm-up: primitive creation, allocator
  step()
  local times = {}
  for k = 1, iters do
    local t0 = now()
    step()
    times[k] = now() - t0
  end
  return bench.median(times)
end

-- ---- PyTorch (scripts/torch_peer.py) --------------------------------------------------------
local function bench_torch(name, batch, iters)
  local out = bench.run_peer(opt.threads, {'layers', opt.threads, name, batch, iters, opt.cpu_time and 'cpu' or 'wall'})
  local t = out:match('TIME ([%d%.]+)')
  if not t then
    io.stderr:write('bench_layers: PyTorch run failed:\n' .. out .. '\n')
    return nil
  end
  return tonumber(t)
end

-- ---- run -----------------------------------------------------------------------------
print(string.format('bench_layers: forward+backward per iteration, %d thread(s), median %s time of K iterations%s',
                    opt.threads, opt.cpu_time and 'CPU' or 'wall', opt.winograd and ', gamlua convs: winograd' or ''))
print(string.format('%-12s %6s %4s %12s %12s %8s', 'model', 'batch', 'K', 'gamlua ms', 'pytorch ms', 'ratio'))
for _, name in ipairs(opt.models) do
  if not SPEC[name] then error('bench_layers: unknown model ' .. name .. ' (resnet18_c or cnn_small)', 0) end
  for _, batch in ipairs(opt.batches) do
    local k = iters_for(name, batch)
    local tt = opt.torch and bench_torch(name, batch, k) or nil
    local tg = bench_gam(name, batch, k)
    collectgarbage()
    print(string.format('%-12s %6d %4d %12.1f %12s %8s', name, batch, k, tg * 1e3,
                        tt and string.format('%.1f', tt * 1e3) or '-',
                        tt and string.format('%.2fx', tg / tt) or '-'))
    io.stdout:flush()
  end
end
