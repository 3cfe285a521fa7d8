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
local F = gam.F

local SCRIPT = debug.getinfo(1, 'S').source:sub(2)
local cli = dofile((SCRIPT:match('^(.*[/\\])') or '') .. 'cli.lua')
local CHECKPOINT_KIND = 'gamlua train_cifar checkpoint'   -- as scripts/train_cifar.lua writes it
local MEASURES = {lambda_max = true, trace = true, zeroth = true, first = true}

local function fail(msg) cli.fail('flatness', msg) end

local FLAGS = {   -- {name, kind, default, help [, auto]} (scripts/cli.lua)
  {'dataset', 'string', nil, 'CIFAR10 | CIFAR100 | FashionMNIST', "the checkpoint's"},
  {'data-dir', 'string', nil, 'dataset folder', './data/<dataset>; FashionMNIST also the system copy'},
  {'examples', 'int', 2000, 'the first N training images'},
  {'batch-size', 'int', 500, 'images per batch'},
  {'measures', 'strings', {'lambda_max', 'trace', 'zeroth', 'first'}, 'what to measure'},
  {'rho', 'number', 0.05, 'radius of the zeroth- and first-order flatness'},
  {'seed', 'int', 0, 'seed of the random vectors'},
  {'iters', 'int', 100, 'power iterations for lambda_max (at most)'},
  {'tol', 'number', 1e-4, 'relative change stopping the power iteration'},
  {'samples', 'int', 100, 'Hutchinson probes for the trace'},
  {'steps', 'int', 20, 'ascent steps of the zeroth- and first-order flatness (at most)'},
  {'threads', 'int', nil, 'CPU threads', 'all'},
  {'device', 'string', 'cpu', 'cpu | cuda'},
  {'csv', 'string', nil, 'append a row of results to this CSV file', 'none'},
}
local USAGE = 'usage: gamlua scripts/flatness.lua CHECKPOINT [flags]'
-- cli.parse takes flags only: the checkpoint is the one word that is not a flag
local ok_parse, parsed = cli.parser {name = 'flatness', flags = FLAGS, usage = USAGE,
                                description = cli.header(SCRIPT)}:pparse(arg)
if not ok_parse then fail(tostring(parsed) .. ' (see --help)') end
local extra = parsed.extra or {}
if #extra == 0 then fail('give the checkpoint to measure; ' .. USAGE) end
if #extra > 1 then fail("unknown argument '" .. extra[2] .. "' (see --help)") end
local args = {checkpoint = extra[1]}
for _, f in ipairs(FLAGS) do
  local v = parsed[f[1]]
  if v == nil then v = f[3] end
  args[f[1]:gsub('%-', '_')] = v
end

for _, k in ipairs {'examples', 'batch_size', 'iters', 'samples', 'steps'} do
  if args[k] < 1 then fail(string.format('--%s must be a positive integer, got %s', k:gsub('_', '-'), args[k])) end
end
if args.seed < 0 then fail('--seed must be an integer >= 0, got ' .. args.seed) end
if not (args.rho > 0) or args.rho == math.huge then fail('--rho must be a number > 0, got ' .. tostring(args.rho)) end
if not (args.tol >= 0) then fail('--tol must be a number >= 0') end
if args.threads then
  if args.threads < 1 then fail('--threads must be a positive integer') end
  gam.set_num_threads(args.threads)
end
if args.device ~= 'cpu' and args.device ~= 'cuda' then fail('--device must be cpu or cuda, got ' .. args.device) end
if args.device == 'cuda' and not gam.cuda_available() then fail('--device cuda: no CUDA device is available') end
local wanted = {}
for _, m in ipairs(args.measures) do
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
    local l, _, i = fl:lambda_max {iters = args.iters, tol = args.tol, seed = args.seed}
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
  local old
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
