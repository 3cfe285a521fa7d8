-- screen_recipe.lua — a cheap screen of Fashion-MNIST training recipes for
-- cnn_small: the first STEPS steps of a run planned over EPOCHS epochs, seed
-- by seed, as `make train` trains them (batch 128, SGD momentum 0.9, weight
-- decay 5e-4, label smoothing 0.1, random flips), with a per-step learning
-- rate: linear warm-up from 0 over WARMUP steps, then cosine to 0 at the end
-- of the planned epochs (WARMUP 0: the cosine alone, per step).
--
--   gamlua scripts/screen_recipe.lua --seeds 0-9 --steps 300 --warmup 469 --radii follow \
--          --csv docs/study/screen.csv --label warmup1-follow
--
-- --radii follow: GAM's radii follow the learning rate (ProportionScheduler
-- from 0 at lr 0 to the radius at the peak lr, as the reference's wiring with
-- min_value 0); constant: the radii stay at their values from step 1.
-- Per seed it prints and appends to the CSV: the mean training loss of the
-- last 20 steps, the hidden units of cnn_small (the ReLU after Linear
-- 3136->128) active on some of the first 1000 test images (batch statistics,
-- as scripts/study_fmnist.lua counts them) and the accuracy on test images
-- 1001-3000 (running statistics), a cheap view of where the run is heading.
local gam = require 'gam'
local argparse = require 'argparse'
local optim, F = gam.optim, gam.F
local U = dofile((debug.getinfo(1, 'S').source:sub(2):match('^(.*[/\\])') or '') .. 'study_util.lua')
local now = require('gam.optim.util').now

local parser = argparse('screen_recipe.lua', 'screen Fashion-MNIST recipes over seeds (first steps only)')
parser:option('--seeds', 'seeds: a range 0-9 or a list 0,3,5', '0-9')
parser:option('--steps', 'steps to train per seed', '300'):convert(tonumber)
parser:option('--epochs', 'epochs the schedule is planned over', '3'):convert(tonumber)
parser:option('--warmup', 'linear warm-up steps of the learning rate (0 = none)', '0'):convert(tonumber)
parser:option('--radii', 'follow | constant', 'follow'):choices {'follow', 'constant'}
parser:option('--opt', 'gam | sgd | sam', 'gam'):choices {'gam', 'sgd', 'sam'}
parser:option('--lr', 'peak learning rate', '0.05'):convert(tonumber)
parser:option('--grad-rho', "GAM rho'", '0.03'):convert(tonumber)
parser:option('--grad-norm-rho', 'GAM rho', '0.2'):convert(tonumber)
parser:option('--alpha', 'GAM alpha (weight of g1 in h+)', '0.1'):convert(tonumber)
parser:option('--beta', 'GAM beta (weight of g0 in h-)', '0.1'):convert(tonumber)
parser:option('--gamma', 'GAM gamma', '0.05'):convert(tonumber)
parser:option('--rho', 'SAM radius', '0.05'):convert(tonumber)
parser:option('--threads', 'CPU threads', '1'):convert(tonumber)
parser:option('--data', 'Fashion-MNIST folder (default: the system one)')
parser:option('--csv', 'append one row per seed to this CSV file')
parser:option('--label', 'name of this candidate in the CSV', 'candidate')
local o = parser:parse()

local function fail(msg) io.stderr:write('screen_recipe: ', msg, '\n'); os.exit(2) end
for _, k in ipairs {'steps', 'epochs', 'warmup', 'lr', 'grad_rho', 'grad_norm_rho', 'alpha', 'beta', 'gamma',
                    'rho', 'threads'} do
  if not o[k] or o[k] < 0 then fail('--' .. k:gsub('_', '-') .. ' needs a number >= 0') end
end
local seeds = {}
do
  local a, b = o.seeds:match('^(%d+)%-(%d+)$')
  if a then for s = tonumber(a), tonumber(b) do seeds[#seeds + 1] = s end
  else
    for v in o.seeds:gmatch('[^,]+') do seeds[#seeds + 1] = tonumber(v) or fail('--seeds: bad list ' .. o.seeds) end
  end
  if #seeds == 0 then fail('--seeds: no seed in ' .. o.seeds) end
end
if o.threads >= 1 then gam.set_num_threads(o.threads) end

local train = gam.data.fashion_mnist {root = o.data, train = true}
local test = gam.data.fashion_mnist {root = o.data, train = false}
local probe, held = test:slice(1, 1000), test:slice(1001, 3000)

local function hidden_alive(model) return U.hidden_alive(gam, model, probe) end

local function accuracy(model)
  model:evaluate()
  local correct = 0
  gam.no_grad(function()
    for x, y in gam.data.loader {dataset = held, batch_size = 500} do
      gam.scope(function()
        local p, t = model(x):argmax(2):totable(), y:totable()
        for i = 1, #t do if p[i] == t[i] then correct = correct + 1 end end
      end)
    end
  end)
  model:train()
  return correct / held:size()
end

local function loss_fn(pred, y) return F.smooth_cross_entropy(pred, y, 0.1):mean() end

local function run(seed)
  return gam.scope(function()
    local model, flat_grad, base, loader = U.start(gam, train, seed, o.lr)
    local radius, schedule = U.recipe(gam, base, o, o.epochs * loader:size())
    local opt
    if o.opt == 'gam' then
      opt = optim.GAM {base = base, model = model, grad_rho = radius(o.grad_rho),
                       grad_norm_rho = radius(o.grad_norm_rho), alpha = o.alpha, beta = o.beta, gamma = o.gamma}
    elseif o.opt == 'sam' then
      opt = optim.SAM {base = base, model = model, rho = radius(o.rho)}
    end
    local stepper = {opt = opt, base = base, model = model, flat_grad = flat_grad, loss_fn = loss_fn}
    local tail = U.run_steps(gam, stepper, loader, o.steps, schedule)
    return tail, hidden_alive(model), accuracy(model), base.lr
  end)
end

print(string.format('screen_recipe %s: %s, first %d steps of %d epochs, warm-up %d steps, radii %s, lr %g, '
                    .. '%d thread(s)', o.label, o.opt:upper(), o.steps, o.epochs, o.warmup, o.radii, o.lr,
                    gam.get_num_threads()))
if o.opt == 'gam' then
  print(string.format("GAM rho' %g rho %g alpha %g beta %g gamma %g", o.grad_rho, o.grad_norm_rho, o.alpha, o.beta,
                      o.gamma))
end
local HEADER = 'label,opt,seed,steps,epochs,warmup,radii,lr,grad_rho,grad_norm_rho,alpha,beta,gamma,rho,'
               .. 'tail_loss,alive,probe_acc,seconds'
local csv
if o.csv then
  local f = io.open(o.csv, 'r')
  local new = f == nil
  if f then f:close() end
  csv = io.open(o.csv, 'a') or fail('cannot write ' .. o.csv)
  if new then csv:write(HEADER, '\n') end
end
print(string.format('%5s %10s %6s %9s %8s', 'seed', 'tail loss', 'alive', 'probe acc', 'seconds'))
local kept = 0
for _, seed in ipairs(seeds) do
  local t0 = now()
  local loss, alive, acc = run(seed)
  local secs = now() - t0
  if alive > 0 then kept = kept + 1 end
  print(string.format('%5d %10.4f %6d %8.2f%% %8.1f', seed, loss, alive, 100 * acc, secs))
  io.stdout:flush()
  if csv then
    csv:write(string.format('%s,%s,%d,%d,%g,%d,%s,%g,%g,%g,%g,%g,%g,%g,%.5f,%d,%.4f,%.1f\n', o.label, o.opt, seed,
                            o.steps, o.epochs, o.warmup, o.radii, o.lr, o.grad_rho, o.grad_norm_rho, o.alpha, o.beta,
                            o.gamma, o.rho, loss, alive, acc, secs))
    csv:flush()
  end
  collectgarbage()
end
if csv then csv:close() end
print(string.format('%s: seeds keeping a live hidden unit after %d steps: %d of %d', o.label, o.steps, kept, #seeds))
