-- study_fmnist.lua — how the first steps of `make train` (GAM on cnn_small,
-- Fashion-MNIST) go, seed by seed, in gamlua and in the PyTorch reference
-- structure (scripts/torch_peer.py, each with its own initialisation and
-- shuffling drawn from the same seed number).
--
--   gamlua scripts/study_fmnist.lua [--seeds 0-7] [--steps 150] [--threads 2] [--opt gam|sgd]
--          [--lr 0.05] [--grad-rho 0.03] [--grad-norm-rho 0.2] [--alpha 0.1] [--beta 0.1]
--          [--gamma 0.05] [--warmup 0] [--radii constant] [--epochs 3] [--data DIR] [--no-torch]
--
-- Each seed trains the first STEPS steps of a 3-epoch run's first epoch: batch
-- 128, SGD (momentum 0.9, weight decay 5e-4), label smoothing 0.1, random
-- flips, GAM with the given radii and weights. The defaults are the
-- reference's settings (the old `make train`): the epoch's learning rate,
-- constant radii. --warmup 234 --radii follow is today's recipe (README): a
-- per-step warm-up over 234 steps, then a cosine to 0 at the end of --epochs,
-- with the radii in proportion to the learning rate, on both sides. Printed per seed and side: the mean loss
-- of the last 20 steps and how many of the 128 hidden units (the ReLU after
-- Linear 3136->128) are active on some of the first 1000 test images. With no
-- live hidden unit the network predicts the same for every image: the loss
-- sits at 1.758 (uniform prediction) and no gradient reaches any layer below
-- the last, so the run stays at 10% accuracy for good. The last line counts
-- the seeds that kept a live hidden unit on each side.
local gam = require 'gam'
local SCRIPT = debug.getinfo(1, 'S').source:sub(2)
local bench = dofile((SCRIPT:match('^(.*[/\\])') or '') .. 'bench_util.lua')
local optim, F = gam.optim, gam.F
local U = dofile((debug.getinfo(1, 'S').source:sub(2):match('^(.*[/\\])') or '') .. 'study_util.lua')

-- ---- options -----------------------------------------------------------------------------
local cli = dofile((SCRIPT:match('^(.*[/\\])') or '') .. 'cli.lua')
local FLAGS = {   -- {name, kind, default, help [, auto]} (scripts/cli.lua)
  {'seeds', 'string', '0-7', 'seeds: a list (0,3,5) or a range (0-7)'},
  {'steps', 'int', 150, 'steps of the first epoch to train, 1..468'},
  {'threads', 'int', 2, 'CPU threads'},
  {'opt', 'string', 'gam', 'gam | sgd'},
  {'lr', 'number', 0.05, 'learning rate'},
  {'grad-rho', 'number', 0.03, "GAM rho'"},
  {'grad-norm-rho', 'number', 0.2, 'GAM rho'},
  {'alpha', 'number', 0.1, 'GAM alpha'},
  {'beta', 'number', 0.1, 'GAM beta'},
  {'gamma', 'number', 0.05, 'GAM gamma'},
  {'warmup', 'int', 0, 'linear warm-up steps of the lr, then a per-step cosine (0: the constant lr of epoch 1)'},
  {'radii', 'string', 'constant', "follow | constant: GAM's radii in proportion to the lr, or fixed"},
  {'epochs', 'int', 3, 'epochs of the run whose start is trained (the cosine ends with them)'},
  {'data', 'string', nil, 'Fashion-MNIST folder', gam.data.FASHION_MNIST_SYSTEM_DIR},
  {'no-torch', 'bool', false, 'gamlua only, no PyTorch side'},
}

local function fail(msg) io.stderr:write('study_fmnist: ', msg, '\n'); os.exit(2) end

local function parse_seeds(s)
  local a, b = s:match('^(%d+)%-(%d+)$')
  if a then
    local t = {}
    for k = tonumber(a), tonumber(b) do t[#t + 1] = k end
    if #t > 0 then return t end
  end
  local t = {}
  for v in s:gmatch('[^,]+') do
    t[#t + 1] = tonumber(v) or fail("--seeds: '" .. s .. "' is not a list (0,3,5) or a range (0-7)")
  end
  return t
end

local o = cli.parse {name = 'study_fmnist', flags = FLAGS, argv = arg, exit_code = 2, description = cli.header(SCRIPT)}
o.seeds = parse_seeds(o.seeds)
o.torch = not o['no-torch']
if o.opt ~= 'gam' and o.opt ~= 'sgd' then fail("--opt must be gam or sgd, got '" .. o.opt .. "'") end
if o.steps < 1 or o.steps % 1 ~= 0 or o.steps > 468 then fail('--steps must be a whole number in [1, 468]') end
if o.threads < 1 or o.threads % 1 ~= 0 then fail('--threads must be a whole number >= 1') end
if o.radii ~= 'follow' and o.radii ~= 'constant' then
  fail("--radii must be follow or constant, got '" .. o.radii .. "'")
end
if o.epochs < 1 then fail('--epochs must be at least 1') end
if o.warmup < 0 or o.warmup >= o.epochs * 469 then
  fail(string.format('--warmup must be a whole number in [0, %d)', o.epochs * 469))
end
gam.set_num_threads(o.threads)

local train = gam.data.fashion_mnist {root = o.data, train = true}
local probe = gam.data.fashion_mnist {root = o.data, train = false}:slice(1, 1000)

-- ---- gamlua ------------------------------------------------------------------------------------
-- hidden units of cnn_small (outputs of module 11, the ReLU after Linear 3136->128)
-- active on some probe image, with batch statistics as in training
local function hidden_alive(model) return U.hidden_alive(gam, model, probe) end

local function loss_fn(pred, y) return F.smooth_cross_entropy(pred, y, 0.1):mean() end

local function run_gamlua(seed)
  return gam.scope(function()
    local model, flat_grad, base, loader = U.start(gam, train, seed, o.lr)
    local radius, schedule = function(r) return r end, function() end
    if o.warmup > 0 then
      radius, schedule = U.recipe(gam, base, {lr = o.lr, warmup = o.warmup, radii = o.radii},
                                  o.epochs * loader:size())
    end
    local opt
    if o.opt == 'gam' then
      opt = optim.GAM {base = base, model = model, grad_rho = radius(o['grad-rho']),
                       grad_norm_rho = radius(o['grad-norm-rho']), alpha = o.alpha, beta = o.beta, gamma = o.gamma}
    end
    local stepper = {opt = opt, base = base, model = model, flat_grad = flat_grad, loss_fn = loss_fn}
    local tail = U.run_steps(gam, stepper, loader, o.steps, schedule)
    return tail, hidden_alive(model)
  end)
end

-- ---- the PyTorch peer ----------------------------------------------------------------------------
local function run_torch(seed)
  local out = bench.run_peer(o.threads, {'fmnist', train.root, seed, o.steps, o.threads, o.opt,
                                         string.format('%.17g %.17g %.17g %.17g %.17g %.17g', o.lr, o['grad-rho'],
                                                       o['grad-norm-rho'], o.alpha, o.beta, o.gamma),
                                         o.warmup, o.epochs * 469, o.radii})
  local loss, alive = out:match('loss=([%d%.]+) alive=(%d+)')
  if not loss then
    io.stderr:write('study_fmnist: PyTorch peer failed: ', (out:gsub('%s+$', '')):sub(-600), '\n')
    return nil
  end
  return tonumber(loss), tonumber(alive)
end

-- ---- run ---------------------------------------------------------------------------------------
print(string.format('study_fmnist: first %d steps of cnn_small on Fashion-MNIST, %s, lr %g%s, %d thread(s)%s', o.steps,
                    o.opt == 'gam' and string.format("GAM rho' %g rho %g alpha %g beta %g gamma %g", o['grad-rho'],
                                                     o['grad-norm-rho'], o.alpha, o.beta, o.gamma) or 'SGD',
                    o.lr, o.warmup > 0 and string.format(' (warm-up %d steps, cosine over %d epochs, radii %s)',
                                                         o.warmup, o.epochs, o.radii) or '',
                    o.threads, o.torch and '' or ', gamlua only'))
print(string.format('%6s  %22s  %22s', 'seed', 'gamlua loss / alive', 'pytorch loss / alive'))
local kept_g, kept_t, ran_t = 0, 0, 0
for _, seed in ipairs(o.seeds) do
  local lg, ag = run_gamlua(seed)
  if ag > 0 then kept_g = kept_g + 1 end
  local lt, at
  if o.torch then
    lt, at = run_torch(seed)
    if lt then
      ran_t = ran_t + 1
      if at > 0 then kept_t = kept_t + 1 end
    end
  end
  print(string.format('%6d  %14.4f / %5d  %22s', seed, lg, ag, lt and string.format('%14.4f / %5d', lt, at) or '-'))
  io.stdout:flush()
  collectgarbage()
end
print(string.format('seeds keeping a live hidden unit after %d steps: gamlua %d of %d, pytorch %s', o.steps, kept_g,
                    #o.seeds, o.torch and string.format('%d of %d', kept_t, ran_t) or '-'))
