-- flatness.lua — how flat a trained network's loss is (gam.flatness): the
-- Hessian's largest eigenvalue, its trace, and the GAM paper's zeroth- and
-- first-order flatness, of the mean cross-entropy over the first N training
-- images (no augmentation; normalised as in training), at the parameters of a
-- checkpoint written by scripts/train_cifar.lua (it names the network and the
-- dataset), with BatchNorm in evaluation mode.
--
--   gamlua scripts/flatness.lua runs/CIFAR10-resnet18_c-gam/checkpoint.gam
--   gamlua scripts/flatness.lua CKPT --examples 1000 --measures lambda_max --iters 100 --csv flat.csv
--
-- Progress goes to stderr; a table of the measures to stdout; with --csv one
-- row is appended to that file (written whole to a temporary file and renamed
-- over it, so the file is never half written; a header when it is new).
local gam = require 'gam'
local argparse = require 'argparse'
local F = gam.F

local CHECKPOINT_KIND = 'gamlua train_cifar checkpoint'   -- as scripts/train_cifar.lua writes it
local MEASURES = {lambda_max = true, trace = true, zeroth = true, first = true}
local ORDER = {'lambda_max', 'trace', 'zeroth', 'first'}

local function fail(msg)
  io.stderr:write('flatness: ', msg, '\n')
  os.exit(1)
end

local parser = argparse('flatness.lua', 'Flatness of the loss at a train_cifar checkpoint (gam.flatness).')
parser:argument('checkpoint', 'checkpoint.gam written by scripts/train_cifar.lua')
parser:option('--dataset', 'CIFAR10 | CIFAR100 | FashionMNIST (default: the checkpoint\'s)')
parser:option('--data-dir', 'dataset folder (default: ./data/<dataset>; FashionMNIST also the system copy)')
parser:option('--examples', 'the first N training images', '2000'):convert(tonumber)
parser:option('--batch-size', 'images per batch', '500'):convert(tonumber)
parser:option('--measures', 'comma-separated: lambda_max, trace, zeroth, first', 'lambda_max,trace,zeroth,first')
parser:option('--rho', 'radius of the zeroth- and first-order flatness', '0.05'):convert(tonumber)
parser:option('--seed', 'seed of the random vectors', '0'):convert(tonumber)
parser:option('--iters', 'power iterations for lambda_max (at most)', '100'):convert(tonumber)
parser:option('--tol', 'relative tolerance stopping the power iteration', '1e-4'):convert(tonumber)
parser:option('--samples', 'Hutchinson probes for the trace', '100'):convert(tonumber)
parser:option('--steps', 'ascent steps of the zeroth- and first-order flatness (at most)', '20'):convert(tonumber)
parser:option('--threads', 'CPU threads (default: all)'):convert(tonumber)
parser:option('--device', 'cpu | cuda', 'cpu')
parser:option('--csv', 'append a row of results to this CSV file')

local ok_parse, args = parser:pparse(arg)
if not ok_parse then fail(args .. '\n' .. parser:get_usage()) end

local function positive_int(name, v)
  if type(v) ~= 'number' or v < 1 or v ~= math.floor(v) then
    fail(string.format('--%s must be a positive integer, got %s', name, tostring(v)))
  end
end
positive_int('examples', args.examples)
positive_int('batch-size', args.batch_size)
positive_int('iters', args.iters)
positive_int('samples', args.samples)
positive_int('steps', args.steps)
if type(args.seed) ~= 'number' or args.seed < 0 or args.seed ~= math.floor(args.seed) then
  fail('--seed must be an integer >= 0, got ' .. tostring(args.seed))
end
if type(args.rho) ~= 'number' or not (args.rho > 0) or args.rho == math.huge then
  fail('--rho must be a number > 0, got ' .. tostring(args.rho))
end
if type(args.tol) ~= 'number' or not (args.tol >= 0) then fail('--tol must be a number >= 0') end
if args.threads then positive_int('threads', args.threads); gam.set_num_threads(args.threads) end
if args.device ~= 'cpu' and args.device ~= 'cuda' then fail('--device must be cpu or cuda, got ' .. args.device) end
if args.device == 'cuda' and not gam.cuda_available() then fail('--device cuda: no CUDA device is available') end
local wanted = {}
for m in args.measures:gmatch('[^,%s]+') do
  if not MEASURES[m] then fail("--measures: unknown measure '" .. m .. "' (lambda_max, trace, zeroth, first)") end
  wanted[m] = true
end
if next(wanted) == nil then fail('--measures: give at least one of lambda_max, trace, zeroth, first') end

-- ---- the checkpoint, the data, the model -------------------------------------------------
local ok, ck = pcall(gam.load, args.checkpoint)
if not ok then fail('cannot read the checkpoint: ' .. tostring(ck)) end
if type(ck) ~= 'table' or ck.kind ~= CHECKPOINT_KIND or type(ck.args) ~= 'table' or type(ck.model) ~= 'table' then
  fail(args.checkpoint .. ' is not a checkpoint written by scripts/train_cifar.lua')
end
local arch = ck.args.arch
if type(arch) ~= 'string' then fail(args.checkpoint .. ' does not name its network (args.arch)') end
local dsname = args.dataset or ck.args.dataset
if type(dsname) ~= 'string' then fail(args.checkpoint .. ' does not name its dataset; give --dataset') end

local function load_train()
  if dsname == 'FashionMNIST' then return gam.data.fashion_mnist {root = args.data_dir, train = true} end
  if dsname ~= 'CIFAR10' and dsname ~= 'CIFAR100' then
    fail("--dataset must be CIFAR10, CIFAR100 or FashionMNIST, got '" .. dsname .. "'")
  end
  return gam.data.cifar {root = args.data_dir or ('./data/' .. dsname), train = true,
                         classes = dsname == 'CIFAR10' and 10 or 100}
end
local ok2, train = pcall(load_train)
if not ok2 then fail(tostring(train)) end
local n = math.min(args.examples, train:size())
local x_all, y_all = gam.data.augment(train:slice(1, n))      -- normalised, no augmentation
local batches = {}
for s = 1, n, args.batch_size do
  local len = math.min(args.batch_size, n - s + 1)
  local x, y = x_all:narrow(1, s, len), y_all:narrow(1, s, len)
  if args.device ~= 'cpu' then x, y = x:to(args.device), y:to(args.device) end
  batches[#batches + 1] = {gam.keep(x), gam.keep(y)}
end

local ok3, model = pcall(gam.models.get, arch, {num_classes = train.classes, in_channels = train.channels})
if not ok3 then fail(tostring(model)) end
local ok4, err = pcall(model.load_state_dict, model, ck.model)
if not ok4 then fail(string.format('the checkpoint does not fit %s on %s: %s', arch, dsname, tostring(err))) end
if args.device ~= 'cpu' then model:to(args.device) end

-- ---- measuring -----------------------------------------------------------------------------
local function now() return require('gam.optim.util').now() end
local last_print = 0
local function progress(what, i, total, value)
  local t = now()
  if t - last_print > 1 or i == total then
    io.stderr:write(string.format('\r%-14s %4d/%-4d  %.6g   ', what, i, total, value))
    if i == total then io.stderr:write('\n') end
    last_print = t
  end
end

local fl = gam.flatness.new {model = model, batches = batches, progress = progress,
                             loss = function(pred, y) return F.cross_entropy(pred, y):mean() end}
io.stderr:write(string.format('%s: %s on %s, epoch %s, %d parameters; %d images in %d batches, %s\n',
                              args.checkpoint, arch, dsname, tostring(ck.epoch), fl:numel(), n, #batches,
                              args.device))
local rows, res = {}, {}
local function timed(name, fn)
  local t0 = now()
  local a, b, c = fn()
  rows[#rows + 1] = {name, a, b, now() - t0}
  io.stderr:write(string.format('%s done in %.1f s\n', name, now() - t0))
  return a, b, c
end
local t_start = now()
res.loss = timed('loss', function() return fl:loss(), '' end)
if wanted.lambda_max then
  local lam, _, info = timed('lambda_max', function()
    local l, v, i = fl:lambda_max {iters = args.iters, tol = args.tol, seed = args.seed}
    return l, string.format('%d iterations%s', i.iters, i.converged and '' or ' (not converged)'), i
  end)
  res.lambda_max, res.lambda_iters, res.lambda_converged = lam, info.iters, info.converged
end
if wanted.trace then
  local tr, _, se = timed('trace', function()
    local t, s = fl:trace {samples = args.samples, seed = args.seed}
    return t, string.format('± %.4g (%d probes)', s, args.samples), s
  end)
  res.trace, res.trace_se = tr, se
end
if wanted.zeroth then
  local r0, _, info = timed('zeroth_order', function()
    local r, i = fl:zeroth_order {rho = args.rho, steps = args.steps}
    return r, string.format('rho %g, %d steps', args.rho, i.steps), i
  end)
  res.r0, res.r0_steps = r0, info.steps
end
if wanted.first then
  local r1, _, info = timed('first_order', function()
    local r, i = fl:first_order {rho = args.rho, steps = args.steps}
    return r, string.format('rho %g, %d steps', args.rho, i.steps), i
  end)
  res.r1, res.r1_steps = r1, info.steps
end
local total = now() - t_start

-- ---- the table -------------------------------------------------------------------------------
print(string.format('%-14s %-14s %-28s %10s', 'measure', 'value', '', 'seconds'))
for _, r in ipairs(rows) do
  print(string.format('%-14s %-14.6g %-28s %10.1f', r[1], r[2], r[3] or '', r[4]))
end
print(string.format('%-14s %-14s %-28s %10.1f', 'total', '', '', total))

-- ---- the CSV row -----------------------------------------------------------------------------
if args.csv then
  local cols = {'time', 'checkpoint', 'arch', 'dataset', 'epoch', 'examples', 'batch_size', 'seed', 'rho', 'loss',
                'lambda_max', 'lambda_iters', 'trace', 'trace_se', 'r0', 'r0_steps', 'r1', 'r1_steps', 'seconds'}
  local vals = {time = os.date('!%Y-%m-%dT%H:%M:%SZ'), checkpoint = args.checkpoint, arch = arch, dataset = dsname,
                epoch = ck.epoch, examples = n, batch_size = args.batch_size, seed = args.seed, rho = args.rho,
                loss = res.loss, lambda_max = res.lambda_max, lambda_iters = res.lambda_iters, trace = res.trace,
                trace_se = res.trace_se, r0 = res.r0, r0_steps = res.r0_steps, r1 = res.r1, r1_steps = res.r1_steps,
                seconds = total}
  local function field(v)
    if v == nil then return '' end
    if type(v) == 'number' then return string.format('%.10g', v) end
    v = tostring(v)
    if v:find('[,"\n]') then v = '"' .. v:gsub('"', '""') .. '"' end
    return v
  end
  local line = {}
  for i, c in ipairs(cols) do line[i] = field(vals[c]) end
  local old = ''
  local f = io.open(args.csv, 'rb')
  if f then
    old = f:read('*a')
    f:close()
    local header = old:match('^([^\n]*)')
    if header ~= table.concat(cols, ',') then
      fail(args.csv .. ' exists with other columns; give another --csv')
    end
    if #old > 0 and old:sub(-1) ~= '\n' then old = old .. '\n' end
  else
    old = table.concat(cols, ',') .. '\n'
  end
  local tmp = args.csv .. '.tmp' .. tostring(os.time()) .. tostring(math.random(1e6))
  local w, werr = io.open(tmp, 'wb')
  if not w then fail('cannot write ' .. tmp .. ': ' .. tostring(werr)) end
  local okw = w:write(old, table.concat(line, ','), '\n')
  w:close()
  if not okw or not os.rename(tmp, args.csv) then
    os.remove(tmp)
    fail('cannot write ' .. args.csv)
  end
  io.stderr:write('appended a row to ' .. args.csv .. '\n')
end
