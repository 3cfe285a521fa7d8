-- train_cifar.lua — train the GAM paper's networks with SGD, SAM, ASAM, GSAM or
-- GAM, as the seed's main_cifar.py does, from one command:
--
--   gamlua scripts/train_cifar.lua --dataset FashionMNIST --arch cnn_small --opt gam --epochs 3
--   gamlua scripts/train_cifar.lua --dataset CIFAR100 --arch resnet18_c --opt gam
--   gamlua scripts/train_cifar.lua --help
--
-- Every epoch: a progress bar, a summary line, a row of <out>/metrics.csv and
-- an atomic checkpoint <out>/checkpoint.gam (model, optimiser, scheduler, RNG
-- and loader state, epoch); --resume continues from it, and on the CPU ends
-- with exactly the parameters of an uninterrupted run, even after a kill -9 at
-- any moment (tests/crash_spec.lua). The learning rate follows a cosine
-- schedule over the epochs (set once per epoch, as the seed).
-- --resume with other flags: --epochs and --lr are followed (the cosine rebuilt
-- from them at the resumed epoch); flags the saved state depends on (data,
-- model, optimiser and its hyperparameters, augmentation) are refused, all
-- changed ones named; device, threads, output and evaluation flags are free.
--
-- Data-parallel: `mpirun -np N gamlua scripts/train_cifar.lua ...` trains on N
-- processes (gam.dist): --batch-size and --threads are per process, each rank
-- trains on its share of every epoch and evaluates its share of the test set
-- (the metrics are summed over the ranks); rank 0 alone prints and writes
-- metrics.csv and the checkpoint; --resume needs the same number of processes.
local gam = require 'gam'
local now = require('gam.optim.util').now
local HERE = debug.getinfo(1, 'S').source:sub(2):match('^(.*[/\\])') or ''
local cli = dofile(HERE .. 'cli.lua')
local tblog = dofile(HERE .. 'train_tensorboard.lua')
local optim, F = gam.optim, gam.F
local dist = gam.dist
-- under mpirun, ranks > 0 print nothing (main sets this)
local print = print

local CHECKPOINT_KIND = 'gamlua train_cifar checkpoint'
local CHECKPOINT_VERSION = 1

-- the networks --arch accepts (gam.models.wrn needs a depth, wrn28_10 is the one used)
local ARCHS = {}
for _, n in ipairs(gam.models.names) do if n ~= 'wrn' then ARCHS[#ARCHS + 1] = n end end

-- The Fashion-MNIST recipe (README, "A GAM recipe that trains in every seed"):
-- a linear warm-up of the learning rate and radii that follow it. CIFAR keeps
-- the reference's (no warm-up, constant radii); --warmup-epochs 0 --radii
-- constant gives the reference on Fashion-MNIST too.
local RECIPE = {warmup_epochs = 0.5, radii = 'follow'}

-- ---- flags ---------------------------------------------------------------------------
-- {name, kind, default, help [, auto]}, one line per flag (kinds: scripts/cli.lua);
-- a default of nil is 'auto', filled in by resolve() and explained by the 5th field
local FLAGS = {
  {'arch', 'string', nil, 'network: ' .. table.concat(ARCHS, ', '), 'resnet18_c; cnn_small for FashionMNIST'},
  {'dataset', 'string', 'CIFAR10', 'CIFAR10 | CIFAR100 | FashionMNIST'},
  {'data', 'string', nil, 'dataset folder', './data/<dataset>; FashionMNIST also '
                                               .. gam.data.FASHION_MNIST_SYSTEM_DIR},
  {'epochs', 'int', 200, 'epochs of training'},
  {'batch-size', 'int', 128, 'training batch size'},
  {'lr', 'number', nil, 'initial learning rate, cosine-annealed to 0 over the epochs', '0.1; 0.05 for FashionMNIST'},
  {'warmup-epochs', 'number', nil, 'linear warm-up of the lr from 0 over X epochs, per step, then a per-step cosine '
                                   .. '(0: the cosine alone, set once per epoch, as the reference)',
   string.format('0; %g for FashionMNIST', RECIPE.warmup_epochs)},
  {'radii', 'string', nil, 'follow | constant: SAM/GAM radii in proportion to the lr (ProportionScheduler) or fixed',
   'constant; ' .. RECIPE.radii .. ' for FashionMNIST'},
  {'wd', 'number', 5e-4, 'weight decay'},
  {'momentum', 'number', 0.9, 'SGD momentum'},
  {'base-opt', 'string', 'SGD', 'base optimiser: SGD | Adam | AdamW'},
  {'opt', 'string', 'gam', 'sgd | sam | asam | gsam | gam | gam-original (Algorithm 1: Hessian-vector products)'},
  {'grad-rho', 'number', nil, "GAM rho': radius of the gradient ascent steps", 'per dataset/arch, below'},
  {'grad-norm-rho', 'number', nil, 'GAM rho: radius of the gradient-norm step', 'per dataset/arch, below'},
  {'grad-beta-0', 'number', nil, 'GAM beta: weight of g0 in h-', 'per dataset/arch, below'},
  {'grad-beta-1', 'number', nil, 'GAM alpha: weight of g1 in h+ (gam-original: of the flatness term)',
   'per dataset/arch, below'},
  {'grad-gamma', 'number', nil, 'GAM gamma: weight of the h- correction', 'per dataset/arch, below'},
  {'gam-mode', 'string', 'reference', "GAM's h-: reference (the released code) | paper (Algorithm 2 as printed)"},
  {'rho', 'number', nil, 'SAM / ASAM / GSAM radius', '0.05; 0.5 for asam'},
  {'gsam-alpha', 'number', 0.4, 'GSAM alpha'},
  {'label-smoothing', 'number', 0.1, 'label smoothing of the loss (0 = plain cross-entropy)'},
  {'seed', 'int', 0, 'seed of the model initialisation, shuffling and augmentation'},
  {'device', 'string', 'auto', 'auto | cpu | cuda'},
  {'threads', 'int', 0, 'CPU threads (0 = all cores)'},
  {'out', 'string', nil, 'output folder for metrics.csv and checkpoint.gam', 'runs/<dataset>-<arch>-<opt>'},
  {'resume', 'optional', false, 'continue from <out>/checkpoint.gam (or --resume=PATH)'},
  {'cutout', 'int', 0, 'cutout square side in pixels for training images (0 = off)'},
  {'no-flip', 'bool', false, 'no random horizontal flips'},
  {'eval-batch-size', 'int', 500, 'batch size of the test pass'},
  {'train-limit', 'int', 0, 'use only the first N training images (0 = all)'},
  {'val-split', 'int', 0, 'hold out the last N training images for validation (never augmented nor trained on)'},
  {'test-limit', 'int', 0, 'use only the first N test images (0 = all)'},
  {'steps-per-epoch', 'int', 0, 'stop each epoch after N steps (0 = a full pass)'},
  {'stop-after', 'int', 0, 'stop after epoch N as if interrupted; continue with --resume (0 = run to the end)'},
  {'progress', 'string', 'auto', 'auto | bar | lines | none (auto: a bar on a terminal, lines otherwise)'},
  {'tensorboard', 'string', 'on', 'TensorBoard event files: on (in <out>) | off | a folder'},
  {'tensorboard-every', 'int', 10, 'steps between the points of the lr chart'},
  {'sync', 'string', 'final', 'under mpirun, SAM/GSAM/GAM: final (average d, as DDP) | every_pass'},
  {'sync-bn', 'bool', false, 'under mpirun: BatchNorm with the global batch statistics (nn.SyncBatchNorm)'},
}

-- GAM defaults: {grad_norm_rho (rho), grad_rho (rho'), beta, alpha, gamma}, from the seed
local GAM_DEFAULTS = {
  CIFAR100 = {resnet = {0.2, 0.02, 0.5, 0.6, 0.03}, pyramidnet = {0.2, 0.04, 0.3, 0.5, 0.05}},
  CIFAR10 = {resnet = {0.2, 0.03, 0.1, 0.1, 0.05}, pyramidnet = {0.2, 0.03, 0.1, 0.1, 0.03}},
  FashionMNIST = {resnet = {0.2, 0.03, 0.1, 0.1, 0.05}, pyramidnet = {0.2, 0.03, 0.1, 0.1, 0.05}},
}

local function fail(msg, code)
  if dist.size() > 1 then dist.abort('train_cifar: ' .. msg) end   -- ends every rank
  io.stderr:write('train_cifar: ', msg, '\n')
  os.exit(code or 1)
end

local EPILOG = table.concat({
  'GAM defaults (rho, rho\', beta, alpha, gamma): CIFAR-100/ResNet 0.2 0.02 0.5 0.6 0.03;',
  '  CIFAR-100/PyramidNet 0.2 0.04 0.3 0.5 0.05; CIFAR-10/ResNet 0.2 0.03 0.1 0.1 0.05;',
  '  CIFAR-10/PyramidNet 0.2 0.03 0.1 0.1 0.03; FashionMNIST 0.2 0.03 0.1 0.1 0.05.',
  'FashionMNIST also defaults to --lr 0.05, --arch cnn_small and the recipe of the README: --warmup-epochs 0.5',
  '  --radii follow (the reference: --warmup-epochs 0 --radii constant).'}, '\n')

local function parse(argv)
  return cli.parse {name = 'train_cifar', flags = FLAGS, argv = argv, epilog = EPILOG,
                    usage = 'usage: gamlua scripts/train_cifar.lua [flags]'}
end

local function family(arch)
  return arch:match('^pyramidnet') and 'pyramidnet' or 'resnet'
end

-- fills the 'auto' values and checks the choices
local function resolve(args)
  local ds = args.dataset
  local canonical = {cifar10 = 'CIFAR10', cifar100 = 'CIFAR100', fashionmnist = 'FashionMNIST',
                     ['fashion-mnist'] = 'FashionMNIST', fmnist = 'FashionMNIST'}
  ds = canonical[ds:lower()]
  if not ds then fail("--dataset must be CIFAR10, CIFAR100 or FashionMNIST, got '" .. args.dataset .. "'") end
  args.dataset = ds
  local fm = ds == 'FashionMNIST'
  args.arch = args.arch or (fm and 'cnn_small' or 'resnet18_c')
  local known = false
  for _, n in ipairs(ARCHS) do if n == args.arch then known = true end end
  if not known then fail("--arch: unknown network '" .. args.arch .. "' (" .. table.concat(ARCHS, ', ') .. ')') end
  args.lr = args.lr or (fm and 0.05 or 0.1)
  args['warmup-epochs'] = args['warmup-epochs'] or (fm and RECIPE.warmup_epochs or 0)
  args.radii = args.radii or (fm and RECIPE.radii or 'constant')
  if args.radii ~= 'follow' and args.radii ~= 'constant' then
    fail("--radii must be follow or constant, got '" .. args.radii .. "'")
  end
  args.opt = args.opt:lower()
  if not ({sgd = 1, sam = 1, asam = 1, gsam = 1, gam = 1, ['gam-original'] = 1})[args.opt] then
    fail("--opt must be sgd, sam, asam, gsam, gam or gam-original, got '" .. args.opt .. "'")
  end
  local bases = {sgd = 'SGD', adam = 'Adam', adamw = 'AdamW'}
  args['base-opt'] = bases[args['base-opt']:lower()] or fail("--base-opt must be SGD, Adam or AdamW")
  local d = GAM_DEFAULTS[ds][family(args.arch)]
  args['grad-norm-rho'] = args['grad-norm-rho'] or d[1]
  args['grad-rho'] = args['grad-rho'] or d[2]
  args['grad-beta-0'] = args['grad-beta-0'] or d[3]
  args['grad-beta-1'] = args['grad-beta-1'] or d[4]
  args['grad-gamma'] = args['grad-gamma'] or d[5]
  args.rho = args.rho or (args.opt == 'asam' and 0.5 or 0.05)
  if args['gam-mode'] ~= 'reference' and args['gam-mode'] ~= 'paper' then
    fail("--gam-mode must be reference or paper, got '" .. args['gam-mode'] .. "'")
  end
  if args.sync ~= 'final' and args.sync ~= 'every_pass' then
    fail("--sync must be final or every_pass, got '" .. args.sync .. "'")
  end
  if not ({auto = 1, cpu = 1, cuda = 1})[args.device] then fail('--device must be auto, cpu or cuda') end
  if not ({auto = 1, bar = 1, lines = 1, none = 1})[args.progress] then
    fail('--progress must be auto, bar, lines or none')
  end
  for _, k in ipairs {'epochs', 'batch-size', 'eval-batch-size', 'tensorboard-every'} do
    if args[k] < 1 then fail('--' .. k .. ' must be at least 1') end
  end
  for _, k in ipairs {'threads', 'train-limit', 'test-limit', 'steps-per-epoch', 'stop-after', 'cutout', 'seed',
                      'val-split', 'warmup-epochs'} do
    if args[k] < 0 then fail('--' .. k .. ' must be >= 0') end
  end
  for _, k in ipairs {'lr', 'wd', 'momentum', 'label-smoothing', 'grad-rho', 'grad-norm-rho', 'grad-gamma', 'rho'} do
    if args[k] < 0 then fail('--' .. k .. ' must be >= 0') end
  end
  if args['label-smoothing'] >= 1 then fail('--label-smoothing must be below 1') end
  if args['warmup-epochs'] >= args.epochs then
    fail(string.format('--warmup-epochs (%g) must be less than --epochs (%d)', args['warmup-epochs'], args.epochs))
  end
  args.out = args.out or string.format('runs/%s-%s-%s', ds, args.arch, args.opt)
  return args
end

-- ---- small utilities -------------------------------------------------------------------

local function file_exists(p)
  local f = io.open(p, 'rb')
  if f then f:close() end
  return f ~= nil
end

local function hms(s)
  s = math.max(0, math.floor(s + 0.5))
  local h, m = math.floor(s / 3600), math.floor(s / 60) % 60
  if h > 0 then return string.format('%dh%02dm%02ds', h, m, s % 60) end
  if m > 0 then return string.format('%dm%02ds', m, s % 60) end
  return string.format('%ds', s)
end

local function stdout_is_tty() return gam.isatty(1) end

local function finite(v) return v == v and v ~= math.huge and v ~= -math.huge end

-- number of equal entries of two int64 tensors of n elements
local function count_equal(a, b)
  local pa, n = a:data_copy()
  local pb = b:data_copy()
  local c = 0
  for i = 0, n - 1 do if pa[i] == pb[i] then c = c + 1 end end
  return c
end

-- ---- data --------------------------------------------------------------------------------
local function load_data(args)
  local ds = args.dataset
  local ok, train, test = pcall(function()
    if ds == 'FashionMNIST' then
      local root = args.data
      return gam.data.fashion_mnist {root = root, train = true}, gam.data.fashion_mnist {root = root, train = false}
    end
    local classes = ds == 'CIFAR10' and 10 or 100
    local root = args.data or ('./data/' .. ds)
    return gam.data.cifar {root = root, train = true, classes = classes},
           gam.data.cifar {root = root, train = false, classes = classes}
  end)
  if not ok then
    local msg = tostring(train)
    if ds ~= 'FashionMNIST' and msg:find('not found', 1, true) then
      msg = msg .. '.\nTo try gamlua without CIFAR, run: gamlua scripts/train_cifar.lua --dataset FashionMNIST'
    end
    fail(msg)
  end
  if args['train-limit'] > 0 and args['train-limit'] < train:size() then train = train:slice(1, args['train-limit']) end
  if args['test-limit'] > 0 and args['test-limit'] < test:size() then test = test:slice(1, args['test-limit']) end
  local val
  if args['val-split'] > 0 then
    local n = train:size()
    if args['val-split'] >= n then
      fail(string.format('--val-split %d leaves no training image (%d in all)', args['val-split'], n))
    end
    val = train:slice(n - args['val-split'] + 1, n)
    train = train:slice(1, n - args['val-split'])
  end
  return train, test, val
end

local function augmentation(args)
  local a = {flip = not args['no-flip']}
  if args.dataset ~= 'FashionMNIST' then a.pad = 4 end
  if args.cutout > 0 then a.cutout = args.cutout end
  return a
end

-- ---- model and optimisers -----------------------------------------------------------------
-- The learning rate: with --warmup-epochs 0 the reference's cosine, set once
-- per epoch; with a warm-up, per step: lr·t/W for steps t <= W, then a cosine
-- from lr to 0 at the last step (the seed's CosineScheduler, stepped before
-- each step). --radii follow: each radius r is r·lr_now/lr (the reference's
-- ProportionScheduler wiring, min_value 0), stepped before each step.
local function build(args, train, device, steps_per_epoch)
  gam.manual_seed(args.seed)
  local model = gam.models.get(args.arch, {num_classes = train.classes, in_channels = train.channels})
  if args['sync-bn'] then gam.nn.SyncBatchNorm.convert(model) end
  if device ~= 'cpu' then model:to(device) end
  model:flat_parameters()
  dist.broadcast_parameters(model, 0)
  local params = model:parameters()
  local base
  if args['base-opt'] == 'SGD' then
    base = optim.SGD {params = params, lr = args.lr, momentum = args.momentum, weight_decay = args.wd}
  else
    base = optim[args['base-opt']] {params = params, lr = args.lr, weight_decay = args.wd}
  end
  local sched, per_step
  if args['warmup-epochs'] > 0 then
    sched = optim.CosineScheduler {T_max = args.epochs * steps_per_epoch, max_value = args.lr, optimizer = base,
                                   warmup_steps = math.floor(args['warmup-epochs'] * steps_per_epoch)}
    sched:step()   -- t = 0 (lr 0) is consumed here: training step t runs at the value of t
    per_step = true
  else
    sched = optim.CosineAnnealingLR {optimizer = base, T_max = args.epochs}
  end
  local radii = {}
  local function radius(r)
    if args.radii ~= 'follow' or args.lr == 0 then return r end
    local s = optim.ProportionScheduler {scheduler = base, max_lr = args.lr, max_value = r, min_value = 0}
    radii[#radii + 1] = s
    return s
  end
  local opt
  if args.opt == 'sam' or args.opt == 'asam' then
    opt = optim.SAM {base = base, model = model, rho = radius(args.rho), adaptive = args.opt == 'asam',
                     sync = args.sync}
  elseif args.opt == 'gsam' then
    opt = optim.GSAM {base = base, model = model, rho = radius(args.rho), alpha = args['gsam-alpha'], sync = args.sync}
  elseif args.opt == 'gam' then
    opt = optim.GAM {base = base, model = model, grad_rho = radius(args['grad-rho']),
                     grad_norm_rho = radius(args['grad-norm-rho']), alpha = args['grad-beta-1'],
                     beta = args['grad-beta-0'], gamma = args['grad-gamma'], mode = args['gam-mode'], sync = args.sync}
  elseif args.opt == 'gam-original' then   -- rho and alpha only (GAMOriginal.lua)
    opt = optim.GAM {variant = 'original', base = base, model = model,
                     grad_norm_rho = radius(args['grad-norm-rho']), alpha = args['grad-beta-1']}
  end
  return model, base, opt, sched, per_step, radii
end

-- the radii at learning rate lr: the flags' values, or (--radii follow) r·lr/args.lr as the
-- ProportionScheduler gives them; {grad_rho =, grad_norm_rho =} for GAM, {rho =} for SAM & co
local function radii_at(args, lr)
  local k = (args.radii == 'follow' and args.lr ~= 0 and lr) and lr / args.lr or 1
  if args.opt == 'gam' then return {grad_rho = k * args['grad-rho'], grad_norm_rho = k * args['grad-norm-rho']} end
  if args.opt == 'gam-original' then return {grad_norm_rho = k * args['grad-norm-rho']} end
  if args.opt == 'sgd' then return {} end
  return {rho = k * args.rho}
end

-- the radii in words (at lr when given: those of the epoch's last step)
local function radii(args, lr)
  local r = radii_at(args, lr)
  if args.opt == 'gam' then return string.format("rho' %.4g rho %.4g", r.grad_rho, r.grad_norm_rho) end
  if args.opt == 'gam-original' then return string.format('rho %.4g', r.grad_norm_rho) end
  if args.opt == 'sgd' then return 'no radius' end
  return string.format('rho %.4g', r.rho)
end

-- ---- progress display ----------------------------------------------------------------------
local Progress = {}
Progress.__index = Progress

local function new_progress(mode, epoch, epochs, total)
  if mode == 'auto' then mode = stdout_is_tty() and 'bar' or 'lines' end
  return setmetatable({mode = mode, epoch = epoch, epochs = epochs, total = total, t0 = now(), last = 0,
                       every = math.max(1, math.ceil(total / 5))}, Progress)
end

function Progress:update(done, images, loss_sum, correct, seen)
  if self.mode == 'none' then return end
  local t = now()
  local el = t - self.t0
  local function text(bar)
    return string.format('epoch %d/%d %s%d/%d  %.0f img/s  loss %.4f  acc %.2f%%  left %s', self.epoch, self.epochs,
                         bar, done, self.total, images / math.max(el, 1e-9), loss_sum / math.max(seen, 1),
                         100 * correct / math.max(seen, 1), hms(el / done * (self.total - done)))
  end
  if self.mode == 'bar' then
    if t - self.last < 0.2 and done < self.total then return end
    self.last = t
    local w = 24
    local fill = math.floor(w * done / self.total)
    local bar = '[' .. string.rep('=', fill) .. (fill < w and '>' or '')
                .. string.rep(' ', math.max(0, w - fill - 1)) .. ']'
    io.write('\r', text(bar .. ' '), '  ')
    io.flush()
  elseif done % self.every == 0 or done == self.total then
    io.write(text(''), '\n')
    io.flush()
  end
end

function Progress:finish()
  if self.mode == 'bar' then
    io.write('\r', string.rep(' ', 110), '\r')
    io.flush()
  end
end

-- ---- training and evaluation -----------------------------------------------------------------
local function evaluate(model, loader, smoothing)
  model:evaluate()
  local loss_sum, correct, seen = 0, 0, 0
  gam.no_grad(function()
    for x, y in loader do
      gam.scope(function()
        local pred = model(x)
        local n = y:size(1)
        loss_sum = loss_sum + F.smooth_cross_entropy(pred, y, smoothing):sum():item()
        correct = correct + count_equal(pred:argmax(2), y)
        seen = seen + n
      end)
    end
  end)
  local t = dist.sum_numbers({loss_sum, correct, seen})   -- every rank's share of the test set
  return t[1] / t[3], t[2] / t[3]
end

-- raises {nonfinite = true, step = s, message = ...} on a non-finite loss
local function train_epoch(args, ctx, epoch)
  local model, base, opt, loader = ctx.model, ctx.base, ctx.opt, ctx.train_loader
  local smoothing = args['label-smoothing']
  local function loss_fn(pred, y) return F.smooth_cross_entropy(pred, y, smoothing):mean() end
  local _, flat_grad = model:flat_parameters()
  local total = loader:size()
  if args['steps-per-epoch'] > 0 then total = math.min(total, args['steps-per-epoch']) end
  local progress = new_progress(args.progress, epoch, args.epochs, total)
  model:train()
  local loss_sum, correct, seen, step = 0, 0, 0, 0
  loader:epoch(epoch)
  for x, y in loader do
    step = step + 1
    if ctx.per_step then ctx.sched:step() end
    for _, r in ipairs(ctx.radii) do r:step() end
    local ok, err = pcall(gam.scope, function()
      local pred, loss
      if opt then
        opt:set_closure(loss_fn, x, y)
        pred, loss = opt:step()
      else
        flat_grad:fill_(0)
        pred = model(x)
        local l = loss_fn(pred, y)
        loss = l:item()
        if not finite(loss) then error('SGD: non-finite loss (' .. tostring(loss) .. ')', 0) end
        l:backward()
        base:step()
      end
      local n, c = y:size(1), count_equal(pred:argmax(2), y)
      loss_sum = loss_sum + loss * n
      correct = correct + c
      seen = seen + n
      if ctx.tb then ctx.tb:step((epoch - 1) * total + step, loss, c / n, base:get_lr()) end
    end)
    if not ok then
      progress:finish()
      local msg = tostring(err):match('^[^\n]*')   -- the message without the traceback
      if msg:find('non%-finite') then error({nonfinite = true, step = step, message = msg}, 0) end
      error(err, 0)
    end
    progress:update(step, seen, loss_sum, correct, seen)
    if step >= total then break end
  end
  progress:finish()
  local t = dist.sum_numbers({loss_sum, correct, seen})     -- over the ranks
  loss_sum, correct, seen = t[1], t[2], t[3]
  return loss_sum / math.max(seen, 1), correct / math.max(seen, 1), seen
end

-- ---- checkpoints and metrics -------------------------------------------------------------------
local CSV_HEADER = 'epoch,train_loss,train_acc,test_loss,test_acc,lr,grad_rho,grad_norm_rho,rho,seconds,'
                   .. 'images_per_second,val_loss,val_acc'

-- metrics.csv is rewritten whole, atomically, from the rows the checkpoint also
-- carries (written first): a kill between the two leaves the csv one row short,
-- and --resume rewrites it from the checkpoint, so no row is lost or doubled.
-- (the files are rank 0's: under mpirun the other ranks write nothing)
local function write_csv(path, rows)
  if dist.rank() > 0 then return end
  local text = CSV_HEADER .. '\n' .. table.concat(rows, '\n') .. (#rows > 0 and '\n' or '')
  local ok, err = pcall(gam.checkpoint.write_text, path, text)
  if not ok then fail(tostring(err)) end
end

-- the rows of epochs <= last of an existing csv (checkpoints before the rows were saved in them)
local function csv_rows(path, last)
  local keep = {}
  if not file_exists(path) then return keep end
  for line in io.lines(path) do
    local e = tonumber(line:match('^(%d+),'))
    if e and e <= last then keep[#keep + 1] = line end
  end
  return keep
end

-- the output folder, made if missing and checked writable before any work; the cause is named
local function prepare_out(dir)
  local made, err = gam.mkdir_p(dir)
  if not made then fail(string.format('output folder %s: %s', dir, err)) end
  local f = io.open(dir, 'rb')
  local is_dir = f and select(3, f:read(1)) == 21 -- EISDIR
  if f then f:close() end
  if not is_dir then fail(string.format('output folder %s: it exists but is not a folder', dir)) end
  local probe = string.format('%s/.train_cifar.write-test.%d', dir, math.random(1e9))
  local w, werr = io.open(probe, 'w')
  if not w then
    fail(string.format('output folder %s is not writable: %s', dir, (tostring(werr):gsub('^.-: ', ''))))
  end
  w:close()
  os.remove(probe)
end

local function plain_args(args)
  local r = {}
  for k, v in pairs(args) do
    if type(v) == 'string' or type(v) == 'number' or type(v) == 'boolean' then r[k] = v end
  end
  return r
end

local function save_checkpoint(path, args, ctx, epoch)
  if dist.rank() > 0 then return end
  gam.save(path, {
    kind = CHECKPOINT_KIND, version = CHECKPOINT_VERSION, epoch = epoch, args = plain_args(args),
    model = ctx.model:state_dict(), optimizer = (ctx.opt or ctx.base):state_dict(),
    scheduler = ctx.sched:state_dict(), rng = gam.rng_state(), loader = ctx.train_loader:state_dict(),
    best_acc = ctx.best_acc, best_epoch = ctx.best_epoch, last_acc = ctx.last_acc, metrics = ctx.rows,
    world_size = dist.size(), last_val = ctx.last_val,
  })
end

local RESUME_FIXED = {'dataset', 'arch', 'opt', 'base-opt', 'seed', 'batch-size', 'train-limit', 'steps-per-epoch',
                      'wd', 'momentum', 'rho', 'gsam-alpha', 'grad-rho', 'grad-norm-rho', 'grad-beta-0',
                      'grad-beta-1', 'grad-gamma', 'gam-mode', 'label-smoothing', 'cutout', 'no-flip',
                      'val-split', 'warmup-epochs', 'radii'}

local function resume(path, args, ctx)
  local ok, ck = pcall(gam.load, path)
  if not ok then fail('cannot resume: ' .. tostring(ck)) end
  if type(ck) ~= 'table' or ck.kind ~= CHECKPOINT_KIND then
    fail('cannot resume: ' .. path .. ' is not a train_cifar checkpoint')
  end
  if ck.version ~= CHECKPOINT_VERSION then
    fail(string.format('cannot resume: %s is a version %s train_cifar checkpoint, this program writes version %d',
                       path, tostring(ck.version), CHECKPOINT_VERSION))
  end
  -- other flags on --resume: those the saved state embodies are refused (all named at once);
  -- the schedule's (--epochs, --lr) are followed: the cosine is rebuilt from them and advanced
  -- to the resumed epoch, as a run started with them would be; the rest are free.
  local changed = {}
  for _, k in ipairs(RESUME_FIXED) do
    if ck.args[k] ~= args[k] then
      changed[#changed + 1] = string.format('--%s %s (checkpoint: %s)', k, tostring(args[k]), tostring(ck.args[k]))
    end
  end
  if (ck.world_size or 1) ~= dist.size() then
    fail(string.format('cannot resume: %s was written by a run of %d process(es), this run has %d '
                       .. '(resume with the same mpirun -np)', path, ck.world_size or 1, dist.size()))
  end
  if #changed > 0 then
    fail(string.format('cannot resume: %s was made with other values of flags its saved state depends on: %s. '
                       .. 'Resume with the checkpoint\'s values (only --epochs and --lr may change), or start a '
                       .. 'new run in another --out', path, table.concat(changed, ', ')))
  end
  if ck.epoch >= args.epochs then
    fail(string.format('cannot resume: %s has %d epochs done; --epochs %d leaves nothing to train', path, ck.epoch,
                       args.epochs))
  end
  ctx.model:load_state_dict(ck.model)
  ;(ctx.opt or ctx.base):load_state_dict(ck.optimizer)
  if ck.args.epochs == args.epochs and ck.args.lr == args.lr then
    ctx.sched:load_state_dict(ck.scheduler)
  else -- the schedule built from the new flags, advanced to where the run stopped
    ctx.base.lr = args.lr
    for _ = 1, ctx.per_step and ck.epoch * ctx.steps or ck.epoch do ctx.sched:step() end
    print(string.format('resume: the schedule follows the new flags: lr %g %s over %d epochs (the checkpoint '
                        .. 'had lr %g over %d); lr %s %d: %g', args.lr,
                        ctx.per_step and 'warm-up and cosine per step' or 'cosine', args.epochs, ck.args.lr,
                        ck.args.epochs, ctx.per_step and 'at the last step of epoch' or 'at epoch',
                        ctx.per_step and ck.epoch or ck.epoch + 1, ctx.base:get_lr()))
  end
  gam.set_rng_state(ck.rng)
  ctx.train_loader:load_state_dict(ck.loader)
  ctx.best_acc, ctx.best_epoch, ctx.last_acc, ctx.last_val = ck.best_acc, ck.best_epoch, ck.last_acc, ck.last_val
  return ck.epoch, ck.metrics
end

-- ---- main ---------------------------------------------------------------------------------------
local function pick_device(want)
  if want == 'cpu' then return 'cpu' end
  local ok = gam.cuda_available()
  if want == 'cuda' and not ok then
    io.stderr:write('train_cifar: --device cuda: no CUDA device is available ('
                    .. (gam.cuda_built() and 'none found on this machine' or 'this build has no CUDA backend')
                    .. '); running on the CPU\n')
  end
  return ok and 'cuda' or 'cpu'
end

local function main(argv)
  local args = resolve(parse(argv))
  local rank, world = dist.init()
  local main_rank = rank == 0
  if not main_rank then
    print = function() end
    args.progress = 'none'
  end
  if main_rank then prepare_out(args.out) end
  if args.threads > 0 then gam.set_num_threads(args.threads) end
  local device = pick_device(args.device)
  local t_start = now()
  local train, test, val = load_data(args)
  -- the ranks must run the same steps (else one waits in a collective forever)
  local agreed, why = pcall(dist.check_agree, 'train_cifar', {{'the device', device}, {'--opt', args.opt},
    {'training images', train:size()}, {'test images', test:size()}, {'--batch-size', args['batch-size']},
    {'--epochs', args.epochs}, {'--steps-per-epoch', args['steps-per-epoch']}, {'--seed', args.seed},
    {'--stop-after', args['stop-after']}, {'--resume', args.resume and 1 or 0}})
  if not agreed then fail(why) end
  if world > 1 and args.opt == 'gam-original' then
    fail('--opt gam-original does not run under mpirun (one process only)')
  end
  local ctx = {}
  ctx.train_loader = gam.data.loader {dataset = train, batch_size = args['batch-size'], shuffle = true,
                                      augment = augmentation(args), seed = args.seed, device = device,
                                      rank = rank, world_size = world}
  -- each rank evaluates a contiguous share of the test set (every image once)
  if test:size() < world then fail(string.format('%d test images for %d processes', test:size(), world)) end
  local share = test:slice(math.floor(rank * test:size() / world) + 1,
                           math.floor((rank + 1) * test:size() / world) - math.floor(rank * test:size() / world))
  ctx.test_loader = gam.data.loader {dataset = share, batch_size = args['eval-batch-size'], device = device}
  if val then
    ctx.val_loader = gam.data.loader {dataset = val, batch_size = args['eval-batch-size'], device = device}
  end
  local steps = ctx.train_loader:size()
  if args['steps-per-epoch'] > 0 then steps = math.min(steps, args['steps-per-epoch']) end
  ctx.steps = steps
  ctx.model, ctx.base, ctx.opt, ctx.sched, ctx.per_step, ctx.radii = build(args, train, device, steps)
  local function close_loaders()
    ctx.train_loader:close()
    ctx.test_loader:close()
    if ctx.val_loader then ctx.val_loader:close() end
  end
  ctx.best_acc, ctx.best_epoch = -1, 0

  local ck_path = args.out .. '/checkpoint.gam'
  local csv_path = args.out .. '/metrics.csv'
  gam.checkpoint.clean_temps(ck_path) -- leftovers of writes a kill interrupted
  gam.checkpoint.clean_temps(csv_path)
  local first = 1
  ctx.rows = {}
  if args.resume then
    local from = args.resume == true and ck_path or args.resume
    local done, rows = resume(from, args, ctx)
    ctx.rows = rows or csv_rows(csv_path, done)
    write_csv(csv_path, ctx.rows)
    first = done + 1
    print(string.format('resumed from %s after epoch %d', from, done))
  elseif main_rank and file_exists(csv_path) then
    os.remove(csv_path) -- a fresh run starts a fresh metrics file
  end

  print(string.format('%s: %d training / %s%d test images; %s (%d parameters) on %s, %d threads',
                      args.dataset, train:size(), val and string.format('%d validation / ', val:size()) or '',
                      test:size(), args.arch, ctx.model:num_parameters(), device, gam.get_num_threads()))
  local schedule = args['warmup-epochs'] > 0
    and string.format('warm-up over %g epochs then cosine per step', args['warmup-epochs'])
    or 'cosine'
  print(string.format('%s over %s, lr %g %s over %d epochs, momentum %g, wd %g, label smoothing %g, '
                      .. 'batch %d (%d steps/epoch), %s%s',
                      args.opt:upper(), args['base-opt'], args.lr, schedule, args.epochs, args.momentum, args.wd,
                      args['label-smoothing'], args['batch-size'], ctx.train_loader:size(), radii(args),
                      (#ctx.radii > 0) and ' following the lr' or ''))
  if world > 1 then
    print(string.format('data-parallel: %d processes (MPI), batch %d per process = %d global, sync %s%s',
                        world, args['batch-size'], world * args['batch-size'], args.sync,
                        args['sync-bn'] and ', SyncBatchNorm' or ''))
  end
  if args.opt == 'gam' then
    print(string.format('GAM: rho %g, rho\' %g, alpha %g, beta %g, gamma %g, mode %s', args['grad-norm-rho'],
                        args['grad-rho'], args['grad-beta-1'], args['grad-beta-0'], args['grad-gamma'],
                        args['gam-mode']))
  elseif args.opt == 'gam-original' then
    print(string.format('GAM, original (Algorithm 1, Hessian-vector products): rho %g, alpha %g',
                        args['grad-norm-rho'], args['grad-beta-1']))
  end
  ctx.tb = main_rank and tblog.open(args, ctx.opt, ctx.model) or nil   -- rank 0's event files only
  print('writing ' .. csv_path .. ' and ' .. ck_path .. (ctx.tb and ' and ' .. ctx.tb.tb.path or ''))

  for epoch = first, args.epochs do
    local t0 = now()
    local lr = ctx.base:get_lr()
    local ok, tr_loss, tr_acc, images = pcall(train_epoch, args, ctx, epoch)
    if ctx.per_step then lr = ctx.base:get_lr() end   -- per step: the lr of the epoch's last step
    if not ok then
      local e = tr_loss
      if type(e) == 'table' and e.nonfinite then
        local last = epoch > 1 and string.format('the last good checkpoint is %s (epoch %d)', ck_path, epoch - 1)
                     or 'no checkpoint was written'
        fail(string.format('non-finite loss at epoch %d, step %d (%s); stopping: %s', epoch, e.step, e.message,
                           last), 2)
      end
      error(e, 0)
    end
    local train_seconds = now() - t0
    local te_loss, te_acc = evaluate(ctx.model, ctx.test_loader, args['label-smoothing'])
    local va_loss, va_acc
    if ctx.val_loader then va_loss, va_acc = evaluate(ctx.model, ctx.val_loader, args['label-smoothing']) end
    if not ctx.per_step then ctx.sched:step() end
    local seconds = now() - t0
    ctx.last_acc, ctx.last_val = te_acc, va_acc
    if te_acc > ctx.best_acc then ctx.best_acc, ctx.best_epoch = te_acc, epoch end
    print(string.format('epoch %3d/%d  train loss %.4f acc %.2f%%  %stest loss %.4f acc %.2f%%  lr %.6f  %s  time %s',
                        epoch, args.epochs, tr_loss, 100 * tr_acc,
                        va_acc and string.format('val loss %.4f acc %.2f%%  ', va_loss, 100 * va_acc) or '',
                        te_loss, 100 * te_acc, lr, radii(args, lr), hms(seconds)))
    io.flush()
    local r = radii_at(args, lr)
    local function g(v) return v and string.format('%.8g', v) or '' end
    ctx.rows[#ctx.rows + 1] = string.format('%d,%.6f,%.6f,%.6f,%.6f,%.8g,%s,%s,%s,%.3f,%.1f,%s,%s',
      epoch, tr_loss, tr_acc, te_loss, te_acc, lr, g(r.grad_rho), g(r.grad_norm_rho), g(r.rho),
      seconds, images / train_seconds,
      va_loss and string.format('%.6f', va_loss) or '', va_acc and string.format('%.6f', va_acc) or '')
    local saved, err = pcall(save_checkpoint, ck_path, args, ctx, epoch)
    if not saved then
      fail(string.format('epoch %d: %s (the last good checkpoint stays: %s)', epoch, tostring(err),
                         epoch > 1 and 'epoch ' .. (epoch - 1) or 'none was written'))
    end
    write_csv(csv_path, ctx.rows)
    if ctx.tb then
      ctx.tb:epoch(epoch, {train_loss = tr_loss, train_acc = tr_acc, lr = lr, radii = r,
                           evals = {test = {te_loss, te_acc}, val = va_loss and {va_loss, va_acc} or nil}})
    end
    if epoch == args['stop-after'] and epoch < args.epochs then
      print(string.format('stopped after epoch %d (--stop-after); continue with --resume', epoch))
      close_loaders()
      if ctx.tb then ctx.tb:close() end
      return
    end
  end
  if ctx.last_acc == nil then fail('no epoch was trained (--epochs ' .. args.epochs .. ')') end
  if ctx.last_val then print(string.format('final validation accuracy: %.2f%%', 100 * ctx.last_val)) end
  print(string.format('final test accuracy: %.2f%%', 100 * ctx.last_acc))
  print(string.format('best test accuracy: %.2f%% at epoch %d; total time %s', 100 * ctx.best_acc, ctx.best_epoch,
                      hms(now() - t_start)))
  if ctx.tb then ctx.tb:close() end
  close_loaders()
end

main(arg or {})
