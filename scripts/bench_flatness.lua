-- bench_flatness.lua — the cost of gam.flatness's measures against a plain
-- forward-backward pass of the same engine, in the same run: one gradient of
-- the mean loss over N images (the peer), one Hessian-vector product (two
-- gradients on the frozen activation pattern: about 2x), the recording of the
-- pattern (one forward pass), and optionally λmax by power iteration.
--
--   gamlua scripts/bench_flatness.lua --model resnet18_c --examples 1000 --batch-size 100 --iters 2
--
-- Inputs are random (seeded) CIFAR-sized images, the network freshly
-- initialised, in evaluation mode; gradient and product are timed alternately
-- (--reps times each) so that both see the same load; medians are printed.
local gam = require 'gam'
local F = gam.F
local SCRIPT = debug.getinfo(1, 'S').source:sub(2)
local cli = dofile((SCRIPT:match('^(.*[/\\])') or '') .. 'cli.lua')
local bench = dofile((SCRIPT:match('^(.*[/\\])') or '') .. 'bench_util.lua')
local util = require 'gam.optim.util'

local FLAGS = {   -- {name, kind, default, help [, auto]} (scripts/cli.lua)
  {'model', 'string', 'resnet18_c', 'a gam.models name (32x32 RGB input; cnn_small: 28x28 grey)'},
  {'examples', 'int', 1000, 'images'},
  {'batch-size', 'int', 100, 'images per batch'},
  {'reps', 'int', 3, 'gradients and products timed'},
  {'iters', 'int', 0, 'power iterations of lambda_max timed after (0: none)'},
  {'threads', 'int', gam.get_num_threads(), 'CPU threads'},
}
local o = cli.parse {name = 'bench_flatness', flags = FLAGS, argv = arg, description = cli.header(SCRIPT)}
for _, k in ipairs {'examples', 'batch-size', 'reps', 'threads'} do
  if o[k] < 1 then cli.fail('bench_flatness', '--' .. k .. ' must be a positive integer') end
end
gam.set_num_threads(o.threads)
gam.manual_seed(0)
local grey = o.model == 'cnn_small'
local ok, model = pcall(gam.models.get, o.model, {num_classes = 10, in_channels = grey and 1 or 3})
if not ok then cli.fail('bench_flatness', tostring(model)) end
local batches = {}
for s = 1, o.examples, o['batch-size'] do
  local n = math.min(o['batch-size'], o.examples - s + 1)
  batches[#batches + 1] = {gam.keep(gam.randn(grey and {n, 1, 28, 28} or {n, 3, 32, 32})),
                           gam.keep(gam.randint(0, 10, {n}))}
end
local fl = gam.flatness.new {model = model, batches = batches,
                             loss = function(p, y) return F.cross_entropy(p, y):mean() end}
local function say(fmt, ...) print(string.format(fmt, ...)); io.stdout:flush() end
say('%s: %d parameters, %d images in %d batches, %d threads', o.model, fl:numel(), o.examples, #batches, o.threads)

local v = gam.keep(gam.randn({fl:numel()}))
local tg, th = {}, {}
for k = 1, o.reps do
  local t0 = util.now()
  gam.scope(function() fl:gradient() end)
  tg[k] = util.now() - t0
  t0 = util.now()
  gam.scope(function() fl:hvp(v) end)      -- records the pattern, then two gradients
  th[k] = util.now() - t0
  io.stderr:write(string.format('rep %d: gradient %.2f s, hvp %.2f s\n', k, tg[k], th[k]))
end
local g, h = bench.median(tg), bench.median(th)
say('gradient (forward-backward over all images): median %.2f s', g)
say('hvp (record + 2 gradients): median %.2f s = %.2fx a gradient', h, h / g)
if o.iters > 0 then
  local t0 = util.now()
  local lam, _, info = fl:lambda_max {iters = o.iters, tol = 0, seed = 0}
  local t = util.now() - t0
  say('lambda_max: %d power iterations in %.1f s (%.1f s per iteration = %.2fx a gradient), value after them %.5g',
      info.iters, t, t / info.iters, t / info.iters / g, lam)
end
