-- gam.log.tensorboard: event files read back with TensorBoard's own reader
-- (tests/tb_read.py on the `tensorboard` package of the venv that `make test`
-- makes under the build folder), a file cut inside a record, bad input, and
-- what scripts/train_cifar.lua logs, value for value against its metrics.csv.
local gam = require 'gam'
local here = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.'
local T = dofile(here .. '/helpers.lua')
local q, contains, errmsg = T.q, T.contains, T.errmsg
local tfrecord = require 'gam.log.tfrecord'

-- GAM_VENV: another build's venv (make test-sanitize uses build/'s)
local PYTHON = (os.getenv('GAM_VENV') or T.dirname(_GAMLUA.lib) .. '/venv') .. '/bin/python'

-- every value in folder, as TensorBoard loads it: {scalar = {[tag] = {[step] = v}}, histo = ..., text = ...}
local function read_back(folder)
  local f = io.open(PYTHON, 'rb')
  assert(f, 'no ' .. PYTHON .. ': `make test` makes it (the Makefile rule $(BUILD)/venv/.stamp)')
  f:close()
  local out, code = T.run(q(PYTHON) .. ' ' .. q(here .. '/tb_read.py') .. ' ' .. q(folder))
  assert.are.equal(0, code, out)
  local r = {scalar = {}, histo = {}, text = {}, n = 0}
  for line in out:gmatch('[^\n]+') do
    local cols = {}
    for c in (line .. '\t'):gmatch('([^\t]*)\t') do cols[#cols + 1] = c end
    local kind, tag, step = cols[1], cols[2], tonumber(cols[3])
    if r[kind] then
      r[kind][tag] = r[kind][tag] or {}
      local v
      if kind == 'scalar' then v = tonumber(cols[4])
      elseif kind == 'text' then v = cols[4]:gsub('%x%x', function(h) return string.char(tonumber(h, 16)) end)
      else
        v = {min = tonumber(cols[4]), max = tonumber(cols[5]), num = tonumber(cols[6]), sum = tonumber(cols[7]),
             sum_squares = tonumber(cols[8]), limits = {}, counts = {}}
        for x in cols[9]:gmatch('[^,]+') do v.limits[#v.limits + 1] = tonumber(x) end
        for x in cols[10]:gmatch('[^,]+') do v.counts[#v.counts + 1] = tonumber(x) end
      end
      r[kind][tag][step] = v
      r.n = r.n + 1
    end
  end
  return r, out
end

local function f32(x) return tonumber(require('ffi').new('float', x)) end

local function near(a, b, tol, what)
  assert(a and b and math.abs(a - b) <= tol * math.max(1, math.abs(b)),
         string.format('%s: %s vs %s', what or 'value', tostring(a), tostring(b)))
end

describe('gam.log.tensorboard', function()
  it('computes CRC-32C (Castagnoli) and its TFRecord mask', function()
    assert.are.equal(0xe3069283, tfrecord.crc32c('123456789'))
    assert.are.equal(0x8a9136aa, tfrecord.crc32c(string.rep('\0', 32)))
    assert.are.equal(0, tfrecord.crc32c(''))
    local c = 0xe3069283
    local rot = (math.floor(c / 2 ^ 15) + (c * 2 ^ 17) % 2 ^ 32) % 2 ^ 32
    assert.are.equal((rot + 0xa282ead8) % 2 ^ 32, tfrecord.masked_crc('123456789'))
  end)

  it('writes scalars, histograms and text that TensorBoard reads back exactly', function()
    local dir = T.tmpdir()
    local tb = gam.log.tensorboard(dir)
    assert.truthy(tb.path:find('^' .. dir:gsub('%p', '%%%0') .. '/events%.out%.tfevents%.%d+%.'), tb.path)
    local values = {}
    for s = 0, 40 do
      values[s] = math.sin(s) * 10 ^ (s % 7 - 3)
      tb:scalar('a/sin', values[s], s)
    end
    tb:scalar('big_step', 2.5, 2 ^ 40)
    gam.manual_seed(3)
    local x = gam.randn({500})
    tb:histogram('h/x', x, 7)
    tb:histogram('h/list', {1, 2, 2, 3, 10}, 8, 3)
    tb:histogram('h/const', {4, 4}, 9)
    local md = '| flag | value |\n|---|---|\n| lr | 0.1 |\nüñï'
    tb:text('flags', md, 0)
    tb:close()
    tb:close() -- a second close does nothing
    local r = read_back(dir)
    for s = 0, 40 do near(r.scalar['a/sin'][s], f32(values[s]), 1e-12, 'a/sin ' .. s) end
    assert.are.equal(2.5, r.scalar.big_step[2 ^ 40])
    local h = r.histo['h/x'][7]
    local list = x:totable()
    local lo, hi, sum, sq = math.huge, -math.huge, 0, 0
    for _, v in ipairs(list) do lo, hi, sum, sq = math.min(lo, v), math.max(hi, v), sum + v, sq + v * v end
    assert.are.equal(500, h.num)
    assert.are.equal(lo, h.min)
    assert.are.equal(hi, h.max)
    near(h.sum, sum, 1e-12, 'sum')
    near(h.sum_squares, sq, 1e-12, 'sum of squares')
    assert.are.equal(30, #h.limits)
    local total = 0
    for b, c in ipairs(h.counts) do   -- every count is the number of values in its bucket
      local left = b == 1 and -math.huge or h.limits[b - 1]
      local n = 0
      for _, v in ipairs(list) do if v > left and v <= h.limits[b] then n = n + 1 end end
      if b == 1 then for _, v in ipairs(list) do if v == lo and not (v > left) then n = n + 1 end end end
      assert.are.equal(n, c, 'bucket ' .. b)
      total = total + c
    end
    assert.are.equal(500, total)
    assert.are.same({1 + 3, 1 + 6, 10}, r.histo['h/list'][8].limits)
    assert.are.same({4, 0, 1}, r.histo['h/list'][8].counts)
    assert.are.same({2}, r.histo['h/const'][9].counts)
    assert.are.equal(md, r.text.flags[0])
    os.execute('rm -rf ' .. q(dir))
  end)

  it('flushes every record, so a reader sees them while the file is open', function()
    local dir = T.tmpdir()
    local tb = gam.log.tensorboard(dir)
    tb:scalar('live', 1, 1)
    tb:scalar('live', 2, 2)
    local r = read_back(dir)
    assert.are.same({[1] = 1, [2] = 2}, r.scalar.live)
    tb:close()
    os.execute('rm -rf ' .. q(dir))
  end)

  it('reads a file cut inside a record up to the cut', function()
    local dir, cut = T.tmpdir(), T.tmpdir()
    local tb = gam.log.tensorboard(dir)
    for s = 1, 10 do tb:scalar('x', s * 0.5, s) end
    tb:close()
    local whole = T.read(tb.path)
    -- walk the records by their length fields (uint64 little-endian, then 4 + data + 4 bytes)
    local starts, at = {}, 1
    while at <= #whole do
      local len = 0
      for k = 8, 1, -1 do len = len * 256 + whole:byte(at + k - 1) end
      starts[#starts + 1] = at
      at = at + 12 + len + 4
    end
    assert.are.equal(#whole + 1, at)
    assert.are.equal(11, #starts)   -- the file_version event and 10 scalars
    T.write(cut .. '/events.out.tfevents.1.cut', whole:sub(1, starts[11] + 12 + 5 - 1))  -- 5 bytes into its data
    local r = read_back(cut)
    for s = 1, 9 do assert.are.equal(s * 0.5, r.scalar.x[s], 'step ' .. s) end
    assert.is_nil(r.scalar.x[10])
    T.write(cut .. '/events.out.tfevents.1.cut', whole:sub(1, starts[11] + 3))    -- inside the length
    r = read_back(cut)
    assert.are.equal(9, r.n)
    os.execute('rm -rf ' .. q(dir) .. ' ' .. q(cut))
  end)

  it('rejects bad tags, steps, values and a closed writer, naming them', function()
    local dir = T.tmpdir()
    local tb = gam.log.tensorboard(dir)
    contains(errmsg(tb.scalar, tb, '', 1, 0), 'tag must be a non-empty string')
    contains(errmsg(tb.scalar, tb, 'x', 1, -1), "scalar('x'): step must be an integer >= 0, got -1")
    contains(errmsg(tb.scalar, tb, 'x', 1, 1.5), 'step must be an integer')
    contains(errmsg(tb.scalar, tb, 'x', 'one', 1), "scalar('x'): value must be a number, got string")
    contains(errmsg(tb.histogram, tb, 'h', 'abc', 1), "histogram('h'): values must be a tensor or a list")
    contains(errmsg(tb.histogram, tb, 'h', {1}, 1, 0), 'bins must be a positive integer')
    contains(errmsg(tb.text, tb, 't', 5, 1), "text('t'): text must be a string, got number")
    tb:close()
    contains(errmsg(tb.scalar, tb, 'x', 1, 1), 'is closed')
    contains(errmsg(gam.log.tensorboard, ''), 'dir must be a folder name')
    contains(errmsg(gam.log.tensorboard, dir, {flsh = true}), "unknown option 'flsh'")
    contains(errmsg(gam.log.tensorboard, '/proc/nowhere/x'), 'cannot open')
    os.execute('rm -rf ' .. q(dir))
  end)
end)

describe('scripts/train_cifar.lua with TensorBoard', function()
  local gamlua = T.gamlua()
  local script = here .. '/../scripts/train_cifar.lua'
  local SMALL = '--dataset FashionMNIST --arch cnn_small --train-limit 96 --test-limit 64 --batch-size 32 '
                .. '--eval-batch-size 64 --threads 1 --progress none --lr 0.05 --epochs 2'

  local function csv(path)
    local rows, header = {}, nil
    for line in io.lines(path) do
      local cols = {}
      for c in (line .. ','):gmatch('([^,]*),') do cols[#cols + 1] = c end
      if not header then header = cols
      else
        local row = {}
        for k, name in ipairs(header) do row[name] = tonumber(cols[k]) end
        rows[#rows + 1] = row
      end
    end
    return rows
  end

  it('logs every metrics.csv value, the per-step values, GAM diagnostics and the flags', function()
    local out_dir = T.tmpname()
    local out, code = T.run(q(gamlua) .. ' ' .. q(script) .. ' ' .. SMALL .. ' --opt gam --tensorboard-every 2 --out '
                            .. q(out_dir))
    assert.are.equal(0, code, out)
    local rows = csv(out_dir .. '/metrics.csv')
    assert.are.equal(2, #rows)
    local r = read_back(out_dir)
    local S = r.scalar
    for e, row in ipairs(rows) do
      near(S['epoch/train_loss'][e], row.train_loss, 2e-6, 'train_loss')
      near(S['epoch/train_acc'][e], row.train_acc, 2e-6, 'train_acc')
      near(S['test/loss'][e], row.test_loss, 2e-6, 'test_loss')
      near(S['test/acc'][e], row.test_acc, 2e-6, 'test_acc')
      near(S['epoch/lr'][e], row.lr, 1e-7, 'lr')
      near(S['radius/grad_rho'][e], row.grad_rho, 1e-7, 'grad_rho')
      near(S['radius/grad_norm_rho'][e], row.grad_norm_rho, 1e-7, 'grad_norm_rho')
      -- three equal batches an epoch: the steps' mean loss and accuracy are the epoch's
      local l, a = 0, 0
      for s = 3 * e - 2, 3 * e do l, a = l + S['train/loss'][s] / 3, a + S['train/acc'][s] / 3 end
      near(l, row.train_loss, 2e-6, 'mean step loss')
      near(a, row.train_acc, 2e-6, 'mean step accuracy')
    end
    assert.are.same({1, 2, 4, 6}, (function()
      local steps = {}
      for s in pairs(S.lr) do steps[#steps + 1] = s end
      table.sort(steps)
      return steps
    end)())
    for s = 1, 6 do
      assert.is_true(S['gam/g0_norm'][s] > 0)
      assert.is_true(S['gam/update_ratio'][s] > 0)
      local c = S['gam/cos_hplus_hminus'][s]
      assert.is_true(c >= -1 and c <= 1, tostring(c))
    end
    contains(r.text.flags[0], '| --opt | gam |')
    contains(r.text.flags[0], '| --tensorboard-every | 2 |')
    -- each parameter's histogram per epoch; the last one is of the checkpoint's parameters
    local ck = gam.load(out_dir .. '/checkpoint.gam')
    local m = gam.models.cnn_small {num_classes = 10, in_channels = 1}
    m:load_state_dict(ck.model)
    local named = m:named_parameters()
    assert.are.equal(12, #named)   -- 2 x (conv, BN) + 2 linear layers, weight and bias each
    for _, p in ipairs(named) do
      local h = r.histo['weights/' .. p.name]
      assert(h and h[1] and h[2], 'no histogram of ' .. p.name)
      local buf, n = p.tensor:data_copy()
      local sum, lo, hi = 0, math.huge, -math.huge
      for i = 0, n - 1 do
        local x = buf[i]
        sum, lo, hi = sum + x, math.min(lo, x), math.max(hi, x)
      end
      assert.are.equal(n, h[2].num, p.name)
      near(h[2].sum, sum, 1e-6, p.name .. ' sum')
      near(h[2].max, hi, 1e-7, p.name .. ' max')
      near(h[2].min, lo, 1e-7, p.name .. ' min')
    end
    os.execute('rm -rf ' .. q(out_dir))
  end)

  it('writes no event file with --tensorboard off, and SAM logs its radius', function()
    local a, b = T.tmpname(), T.tmpname()
    local ONE = SMALL .. ' --epochs 1 --train-limit 32 --test-limit 32'   -- one step (later flags win)
    local out, code = T.run(q(gamlua) .. ' ' .. q(script) .. ' ' .. ONE .. ' --opt sgd --tensorboard off --out '
                            .. q(a))
    assert.are.equal(0, code, out)
    local ls = T.run('ls ' .. q(a))
    assert.is_nil(ls:find('tfevents', 1, true), ls)
    out, code = T.run(q(gamlua) .. ' ' .. q(script) .. ' ' .. ONE .. ' --opt sam --radii constant --out ' .. q(a)
                      .. ' --tensorboard ' .. q(b))
    assert.are.equal(0, code, out)
    local r = read_back(b)
    near(r.scalar['radius/rho'][1], 0.05, 1e-7, 'rho')
    assert.is_nil(r.scalar['gam/g0_norm'])
    os.execute('rm -rf ' .. q(a) .. ' ' .. q(b))
  end)
end)
