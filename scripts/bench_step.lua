-- bench_step.lua — time whole optimiser steps (forward, backward, optimiser
-- work) of gamlua against an SGD step of the same engine and against the same
-- optimiser written in PyTorch as the public reference code does it.
--
--   gamlua scripts/bench_step.lua --model cnn_small|resnet18_c|pyramidnet110_c --opt sgd|sam|gsam|gam
--          [--batch 128] [--steps 10] [--warmup 2] [--threads T] [--device cpu|cuda]
--          [--no-torch] [--no-sgd]
-- (scripts/bench_cuda.sh runs the GPU set: resnet18_c and pyramidnet110_c at
-- batch 128 with sgd, sam and gam.)
--
-- A step is: SGD — zero_grad, forward, smooth cross-entropy, backward, update;
-- SAM/GSAM/GAM — opt:step() on a closure doing the same (2, 2 and 4 passes).
-- Inputs are random (seeded), the same batch every step; the base optimiser is
-- SGD(lr 0.05, momentum 0.9, weight decay 5e-4); rho 0.05 (SAM, GSAM with
-- alpha 0.4); GAM grad_rho 0.03, grad_norm_rho 0.2, alpha = beta = 0.1, gamma 0.05.
--
-- Printed, in order:
--   * for sam/gsam/gam: the median SGD step of this engine (timed interleaved
--     with the steps under test, so both see the same load) and the ratio;
--   * for gam/sam/gsam: the optimiser's own vector work (its fused passes, the
--     gradient zeroing before each pass and the base update), the bytes those
--     passes move, and the floor those bytes take at the copy bandwidth
--     measured here on a vector of the same size with the same threads, both
--     from memory (caches swept first, as a forward/backward sweeps them
--     between the phases of a step) and in cache;
--   * the PyTorch peer (scripts/torch_peer.py on /usr/bin/python3, Debian's python3-torch): the same
--     model, batch, threads and optimiser, the optimiser written as the
--     released reference code (per-parameter loops and state), and the ratio;
--   * last: "<model> batch=<B> opt=<opt> threads=<T>: median <X> ms/step".
-- Medians damp the noise of a shared machine; figures from a busy machine are
-- indicative only.
--
-- With --device cuda: every step is timed until the device has finished it
-- (gam.synchronize; a GAM/SAM step itself waits only once, at its end). The
-- optimiser's vector work is measured apart from the timed steps, each fused
-- kernel queued back to back on buffers of the model's size and timed as a
-- batch (one wait): its achieved bandwidth (bytes it must move / time) is
-- printed against the device-to-device copy bandwidth measured the same way
-- (gam_opt_copy on the device is cudaMemcpyAsync). The PyTorch peer runs on
-- the same GPU in float32 with TF32 off (cudnn.allow_tf32 = False,
-- matmul.allow_tf32 = False), as gamlua's cuDNN/cuBLAS calls, and
-- cudnn.benchmark off (heuristic algorithm choice, as gamlua); its python is
-- $GAM_PYTHON, else python3 on the PATH (/usr/bin/python3 for the cpu).
local gam = require 'gam'
local SCRIPT = debug.getinfo(1, 'S').source:sub(2)
local bench = dofile((SCRIPT:match('^(.*[/\\])') or '') .. 'bench_util.lua')
local optim, F = gam.optim, gam.F
local util = require 'gam.optim.util'

-- ---- options ---------------------------------------------------------------------------
local cli = dofile((SCRIPT:match('^(.*[/\\])') or '') .. 'cli.lua')
local FLAGS = {   -- {name, kind, default, help [, auto]} (scripts/cli.lua)
  {'model', 'string', 'cnn_small', 'cnn_small | resnet18_c | pyramidnet110_c'},
  {'opt', 'string', 'gam', 'sgd | sam | gsam | gam'},
  {'batch', 'int', 128, 'batch size'},
  {'steps', 'int', 10, 'timed steps'},
  {'warmup', 'int', 2, 'untimed steps first'},
  {'threads', 'int', gam.get_num_threads(), 'CPU threads of both sides'},
  {'device', 'string', 'cpu', 'cpu | cuda'},
  {'no-torch', 'bool', false, 'no PyTorch peer'},
  {'no-sgd', 'bool', false, 'no interleaved SGD steps'},
}
local o = cli.parse {name = 'bench_step', flags = FLAGS, argv = arg, description = cli.header(SCRIPT)}
o.torch, o.sgd = not o['no-torch'], not o['no-sgd']
local INPUT = {cnn_small = {1, 28, 28}, resnet18_c = {3, 32, 32}, pyramidnet110_c = {3, 32, 32}}
if not INPUT[o.model] then
  cli.fail('bench_step', '--model must be cnn_small, resnet18_c or pyramidnet110_c, got ' .. o.model)
end
if not ({sgd = 1, sam = 1, gsam = 1, gam = 1})[o.opt] then
  cli.fail('bench_step', '--opt must be sgd, sam, gsam or gam, got ' .. o.opt)
end
if o.device ~= 'cpu' and o.device ~= 'cuda' then cli.fail('bench_step', '--device must be cpu or cuda') end
if o.device == 'cuda' and not gam.cuda_available() then
  cli.fail('bench_step', '--device cuda, but no CUDA device is available' ..
           (gam.cuda_built() and '' or ' (libgam was built without CUDA)'))
end
for _, k in ipairs {'batch', 'steps', 'threads'} do
  if o[k] < 1 then cli.fail('bench_step', '--' .. k .. ' must be a positive integer') end
end
gam.set_num_threads(o.threads)

-- ---- gamlua -------------------------------------------------------------------------------
local function setup()
  gam.manual_seed(1)
  local model = gam.models[o.model]{num_classes = 10}
  if o.device ~= 'cpu' then model = model:to(o.device) end
  model:train()
  local shape = {o.batch, unpack(INPUT[o.model])}
  local x = gam.randn(shape, {device = o.device})
  local y = gam.randint(0, 10, {o.batch}, {device = o.device})
  local base = optim.SGD{params = model:parameters(), lr = 0.05, momentum = 0.9, weight_decay = 5e-4}
  return model, base, x, y
end

local function loss_fn(pred, y) return F.smooth_cross_entropy(pred, y, 0.1):mean() end

-- returns a function running one step, and the optimiser
local function make_step(kind)
  local model, base, x, y = setup()
  if kind == 'sgd' then
    model:flat_parameters()
    return function()
      base:zero_grad()
      gam.scope(function()
        local loss = loss_fn(model(x), y)
        loss:backward()
        loss:item()
      end)
      base:step()
    end, base, model
  end
  local opt
  if kind == 'sam' then
    opt = optim.SAM{base = base, model = model, rho = 0.05}
  elseif kind == 'gsam' then
    opt = optim.GSAM{base = base, model = model, rho = 0.05, alpha = 0.4}
  else
    opt = optim.GAM{base = base, model = model, grad_rho = 0.03, grad_norm_rho = 0.2, alpha = 0.1,
                    beta = 0.1, gamma = 0.05}
  end
  opt:set_closure(loss_fn, x, y)
  return function() gam.scope(function() opt:step() end) end, opt, model
end

-- on a GPU, a step is timed until its queued work has finished
local C = require 'gam.lib'
local has_sync = pcall(function() return C.gam_cuda_synchronize end)
local function sync()
  if o.device == 'cuda' and has_sync then C.gam_cuda_synchronize() end
end

-- Times the steps of the optimiser under test and, interleaved with them (so
-- that both see the same load on a shared machine), SGD steps of the same
-- engine: returns medians of step ms, of SGD step ms, of the optimiser's
-- vector-work ms, and its MB of vector traffic per step.
local function time_steps(step, opt, sgd_step)
  for _ = 1, o.warmup do
    step()
    if sgd_step then sgd_step() end
  end
  sync()
  local t, ts, kt, kb = {}, {}, {}, 0
  for k = 1, o.steps do
    local k0, b0 = opt and opt.kernel_seconds, opt and opt.kernel_bytes
    local t0 = util.now()
    step()
    sync()
    t[k] = (util.now() - t0) * 1e3
    if opt then
      kt[k] = (opt.kernel_seconds - k0) * 1e3
      kb = (opt.kernel_bytes - b0) / 1e6
    end
    if sgd_step then
      t0 = util.now()
      sgd_step()
      sync()
      ts[k] = (util.now() - t0) * 1e3
    end
  end
  return bench.median(t), sgd_step and bench.median(ts), opt and bench.median(kt), opt and kb
end

local function say(fmt, ...)
  local s = string.format(fmt, ...)
  print(s)
  io.stdout:flush()
end

local step, opt, model = make_step(o.opt)
local nparams = 0
for _, p in ipairs(model:parameters()) do nparams = nparams + p:numel() end
say('%s: %d parameters, batch %d, %d threads, %s; %d timed steps after %d warm-up',
    o.model, nparams, o.batch, o.threads, o.device, o.steps, o.warmup)

local sharp = o.opt ~= 'sgd'
local on_gpu = o.device == 'cuda'
if sharp and not on_gpu then opt.profile = true end   -- (on the GPU: measured apart, below)
local sgd_step = sharp and o.sgd and make_step('sgd') or nil
local ms, sgd_ms, kernel_ms, kernel_mb = time_steps(step, sharp and not on_gpu and opt or nil, sgd_step)
step, opt, sgd_step = nil, nil, nil
collectgarbage()
if sgd_ms then
  say('gamlua sgd step (interleaved): median %.2f ms/step; %s/sgd = %.2fx (%d passes)', sgd_ms, o.opt,
      ms / sgd_ms, o.opt == 'gam' and 4 or 2)
end

-- the optimiser's own vector work against the copy bandwidth, measured on a
-- vector of the same size with the same threads: in cache (copied again and
-- again) and from memory (the caches swept by writing 128 MB before each copy,
-- as a forward/backward pass sweeps them before each phase of a step)
if kernel_ms and not on_gpu then
  local n = nparams
  local a, b = gam.empty({n}), gam.empty({n})
  a:fill_(1)
  b:fill_(0)
  local reps = math.max(3, math.floor(2e8 / (8 * n)))
  local hot = math.huge
  for _ = 1, 5 do
    local t0 = util.now()
    for _ = 1, reps do C.gam_opt_copy(b.t, a.t) end
    hot = math.min(hot, (util.now() - t0) / reps)
  end
  local sweep = gam.empty({32 * 1024 * 1024})
  local cold = {}
  for k = 1, 9 do
    sweep:fill_(k)
    local t0 = util.now()
    C.gam_opt_copy(b.t, a.t)
    cold[k] = util.now() - t0
  end
  sweep = nil
  local bw_hot, bw_cold = 8 * n / hot, 8 * n / bench.median(cold)
  local bytes = kernel_mb * 1e6
  say('%s vector work: median %.3f ms/step, its passes moving %.1f MB (%.1f vectors of %d floats)', o.opt, kernel_ms,
      kernel_mb, bytes / (4 * n), n)
  say('  copy bandwidth %.1f GB/s from memory -> floor %.3f ms, work/floor = %.2fx', bw_cold / 1e9,
      bytes / bw_cold * 1e3, kernel_ms / (bytes / bw_cold * 1e3))
  say('  copy bandwidth %.1f GB/s in cache    -> floor %.3f ms, work/floor = %.2fx', bw_hot / 1e9,
      bytes / bw_hot * 1e3, kernel_ms / (bytes / bw_hot * 1e3))
end

-- The fused optimiser kernels on the GPU, each timed as a batch of back-to-back
-- launches on vectors of the model's size, against the device's copy bandwidth.
-- Bytes are what each pass must move (vectors read + written, 4 bytes each).
if on_gpu and sharp then
  local ffi = require 'ffi'
  local n = nparams
  local function vec(v) local t = gam.empty({n}, {device = 'cuda'}); t:fill_(v); return t end
  local th, th0, g, g0, hp, buf = vec(0.5), vec(0.5), vec(1e-3), vec(2e-3), vec(0), vec(0)
  local T = require 'gam.tensor'
  local out = ffi.new('gam_tensor*[1]')
  T.check(C.gam_opt_scalars(out, C.GAM_CUDA))
  local S = T.wrap(out[0])
  local reps = math.max(10, math.floor(4e10 / (20 * 4 * n)))   -- about 40 GB of traffic per kernel
  local function bench(nvec, fn)
    T.check(fn())
    gam.synchronize()
    local t0 = util.now()
    for _ = 1, reps do T.check(fn()) end
    gam.synchronize()
    local sec = (util.now() - t0) / reps
    return sec, nvec * 4 * n / sec
  end
  local _, copy_bw = bench(2, function() return C.gam_opt_copy(th0.t, th.t) end)
  local s = S.t
  local kernels = {
    {'norm (g)', 1, function() return C.gam_opt_norm_s(s, g.t, nil, 1) end},
    {'ascend + save θ, g', 5, function() return C.gam_opt_ascend_s(th.t, th0.t, g.t, g0.t, 0.0, s, 0) end},
    {'gam pass 1', 3, function() return C.gam_gam_pass1_s(s, hp.t, g.t, g0.t, th0.t, 0.1, 0, 2) end},
    {'gam ascend h0', 4, function() return C.gam_gam_ascend_h0_s(th.t, th0.t, g.t, g0.t, 0.0, s, 0) end},
    {'gam pass 2', 3, function() return C.gam_gam_pass2_s(s, g0.t, g.t, th.t, 1, 0.9, 0, 3) end},
    {'ascend', 3, function() return C.gam_opt_ascend_s(th.t, nil, g.t, nil, 0.0, s, 0) end},
    {'gam pass 3', 4, function() return C.gam_gam_pass3_s(s, g.t, hp.t, g0.t, 0.9, 4, 5) end},
    {'decompose', 3, function() return C.gam_opt_decompose_s(g.t, g0.t, 0.0, s) end},
    {'sgd from θ0 (momentum)', 5, function() return C.gam_sgd_step_s(th.t, g.t, buf.t, th0.t, 0, 0.9, 0, 5e-4, 0, 0, s) end},
    {'zero the gradient', 1, function() return C.gam_fill_(g.t, 0) end},
  }
  say('fused optimiser kernels on the GPU (%d floats; device-to-device copy %.0f GB/s):', n, copy_bw / 1e9)
  local total_s, total_b = 0, 0
  for _, k in ipairs(kernels) do
    local sec, bw = bench(k[2], k[3])
    total_s, total_b = total_s + sec, total_b + k[2] * 4 * n
    say('  %-24s %d vectors  %8.1f us  %7.0f GB/s = %3.0f%% of copy', k[1], k[2], sec * 1e6, bw / 1e9,
        100 * bw / copy_bw)
  end
  -- one step's worth: GAM runs each kernel above once (ascend twice, zeroing 4x),
  -- SAM norm x2, ascend (4 vectors), sgd, zeroing 2x
  say('  all of them once: %.3f ms moving %.1f MB: %.0f GB/s = %.0f%% of copy', total_s * 1e3, total_b / 1e6,
      total_b / total_s / 1e9, 100 * total_b / total_s / copy_bw)
  S = nil
  collectgarbage()
end

-- ---- the PyTorch peer (scripts/torch_peer.py) ------------------------------------------------
if o.torch then
  local python = os.getenv('GAM_PYTHON') or (on_gpu and 'python3' or '/usr/bin/python3')
  local out = bench.run_peer(o.threads, {'step', o.model, o.opt, o.batch, o.steps, o.warmup, o.threads, o.device},
                             python)
  local peer = tonumber(out:match('median_ms=([%d%.]+)'))
  local peer_params = tonumber(out:match('params=(%d+)'))
  if peer_params and peer_params ~= nparams then
    say('note: the pytorch model has %d parameters, gamlua\'s %d', peer_params, nparams)
  end
  if peer then
    say('pytorch %s step (reference structure%s): median %.2f ms/step; gamlua/pytorch = %.2fx', o.opt,
        on_gpu and ', float32, no TF32' or '', peer, ms / peer)
  else
    say('pytorch peer failed: %s', (out:gsub('%s+$', '')):sub(-600))
  end
end

say('%s batch=%d opt=%s threads=%d: median %.2f ms/step', o.model, o.batch, o.opt, o.threads, ms)
