-- scripts/train_cifar.lua under abuse (issue 15): SIGKILL at 20 random moments
-- (some while a checkpoint is being written) always resumes to the parameters
-- and metrics of an uninterrupted run and leaves no stray file; a file-size
-- limit is a clear error that keeps the previous checkpoint; --resume with other
-- flags follows the new schedule or refuses, naming the flags; the output
-- folder is checked before any work. Data: a tiny synthetic Fashion-MNIST-format
-- set written here, so the whole file runs in seconds.
local gam = require 'gam'
local ffi = require 'ffi'

local here = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.'
local T = dofile(here .. '/helpers.lua')
local q, tmpdir, write, contains, run = T.q, T.tmpdir, T.write, T.contains, T.run
local gamlua = T.gamlua()
local script = here .. '/../scripts/train_cifar.lua'

pcall(ffi.cdef, 'int usleep(unsigned int usec);')

local function be32(n)
  return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
end

-- train/t10k IDX pairs of n and m random 28x28 images in dir
local function synthetic(dir, n, m)
  math.randomseed(15)
  for _, s in ipairs {{'train', n}, {'t10k', m}} do
    local px, lb = {}, {}
    for i = 1, s[2] * 784 do px[i] = string.char(math.random(0, 255)) end
    for i = 1, s[2] do lb[i] = string.char(math.random(0, 9)) end
    local header = '\0\0\8\3' .. be32(s[2]) .. be32(28) .. be32(28)
    write(dir .. '/' .. s[1] .. '-images-idx3-ubyte', header .. table.concat(px))
    write(dir .. '/' .. s[1] .. '-labels-idx1-ubyte', '\0\0\8\1' .. be32(s[2]) .. table.concat(lb))
  end
end

local function listdir(dir)
  local p = io.popen('ls -A ' .. q(dir) .. ' 2>/dev/null')
  local names = {}
  -- TensorBoard event files are the run's own output (one per process), not strays
  for l in p:lines() do if not l:match('^events%.out%.tfevents%.') then names[#names + 1] = l end end
  p:close()
  table.sort(names)
  return names
end

local function now()
  local p = io.popen('date +%s.%N')
  local t = tonumber(p:read('*l'))
  p:close()
  return t
end

-- the model parameters of a checkpoint as one string of bytes, and its epoch
local function params(path)
  local ck = gam.load(path)
  local keys, parts = {}, {}
  for k in pairs(ck.model) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local t = ck.model[k]
    local buf, n = t:data_copy()
    parts[#parts + 1] = k .. '=' .. ffi.string(buf, n * (t:dtype() == 'int64' and 8 or 4))
  end
  return table.concat(parts, ';'), ck.epoch
end

-- metrics.csv without the timing columns
local function metrics(path)
  local rows = {}
  for line in io.lines(path) do
    local cols = {}
    for c in (line .. ','):gmatch('([^,]*),') do cols[#cols + 1] = c end
    rows[#rows + 1] = table.concat(cols, ',', 1, 9)
  end
  return table.concat(rows, '\n')
end

describe('train_cifar killed and starved', function()
  local dir, data, EPOCHS
  local flags
  setup(function()
    dir = tmpdir()
    data = dir .. '/data'
    os.execute('mkdir -p ' .. q(data))
    synthetic(data, 48, 16)
    EPOCHS = 4
    flags = '--dataset FashionMNIST --data ' .. q(data) .. ' --arch cnn_small --opt gam --batch-size 16 '
            .. '--eval-batch-size 16 --threads 1 --progress none --lr 0.05'
  end)
  teardown(function() os.execute('rm -rf ' .. q(dir)) end)

  local function train_run(extra, out)
    return run(string.format('%s %s %s %s --out %s', q(gamlua), q(script), flags, extra, q(out)))
  end
  local train = train_run

  it('resumes after 20 SIGKILLs to the parameters and metrics of an uninterrupted run, no stray files', function()
    local ref = dir .. '/ref'
    local t0 = now()
    local out, rc = train('--epochs ' .. EPOCHS, ref)
    local span = now() - t0
    assert.are.equal(0, rc, out)
    local want_params = params(ref .. '/checkpoint.gam')
    local want_metrics = metrics(ref .. '/metrics.csv')
    assert.are.same({'checkpoint.gam', 'metrics.csv'}, listdir(ref))

    math.randomseed(2026)
    local kdir = dir .. '/killed'
    local kills, in_write, cycles = 0, 0, 0
    local function finish_cycle()  -- runs the cycle to its end and checks it against the reference
      out, rc = train('--epochs ' .. EPOCHS .. (#listdir(kdir) > 0 and ' --resume' or ''), kdir)
      if rc ~= 0 and out:find('leaves nothing to train', 1, true) then rc = 0 end
      assert.are.equal(0, rc, out)
      local p, e = params(kdir .. '/checkpoint.gam')
      assert.are.equal(EPOCHS, e)
      assert.is_true(p == want_params, 'the resumed run ended with other parameters')
      assert.are.equal(want_metrics, metrics(kdir .. '/metrics.csv'))
      assert.are.same({'checkpoint.gam', 'metrics.csv'}, listdir(kdir))
      os.execute('rm -rf ' .. q(kdir))
      cycles = cycles + 1
    end
    os.execute('mkdir -p ' .. q(kdir))
    local attempt = 0
    while kills < 20 do
      attempt = attempt + 1
      assert.is_true(attempt < 80, 'too few runs could be killed')
      local ck = kdir .. '/checkpoint.gam'
      if io.open(ck) and select(2, params(ck)) == EPOCHS then finish_cycle() os.execute('mkdir -p ' .. q(kdir)) end
      local resume = io.open(ck) ~= nil
      local cmd = string.format('%s %s %s --epochs %d %s --out %s > /dev/null 2>&1 & echo $!', q(gamlua), q(script),
                                flags, EPOCHS, resume and '--resume' or '', q(kdir))
      local p = io.popen(cmd)
      local pid = tonumber(p:read('*l'))
      p:close()
      local hit
      if kills % 3 == 2 then   -- a kill the moment a checkpoint write is under way
        local w = io.popen(string.format([[bash -c 'shopt -s nullglob; while kill -0 %d 2>/dev/null; do ]]
          .. [[a=(%s/.checkpoint.gam.tmp.*); if [ ${#a[@]} -gt 0 ]; then kill -9 %d; echo hit; exit; fi; done; ]]
          .. [[echo missed']], pid, kdir, pid))
        hit = w:read('*l') == 'hit'
        w:close()
        if hit then in_write = in_write + 1 end
      else
        ffi.C.usleep(math.floor(math.random() * span * 0.9e6))
        hit = os.execute('kill -9 ' .. pid .. ' 2>/dev/null') == 0
      end
      if hit then kills = kills + 1 end
      while os.execute('kill -0 ' .. pid .. ' 2>/dev/null') == 0 do ffi.C.usleep(10000) end
    end
    finish_cycle()
    assert.are.equal(20, kills)
    assert.is_true(in_write >= 3, 'only ' .. in_write .. ' kills landed during a checkpoint write')
    assert.is_true(cycles >= 1)
  end)

  it('a file-size limit while saving is a clear error; the last checkpoint and metrics stay', function()
    local o = dir .. '/limited'
    local out, rc = train('--epochs 2 --stop-after 1', o)
    assert.are.equal(0, rc, out)
    local before = T.read(o .. '/checkpoint.gam')
    local csv = T.read(o .. '/metrics.csv')
    out, rc = run(string.format('ulimit -f 16; %s %s %s --epochs 2 --resume --out %s', q(gamlua), q(script), flags,
                                q(o)))
    assert.are.equal(1, rc, out)   -- not 153 (SIGXFSZ)
    contains(out, 'File too large (a file-size limit: see ulimit -f)')
    contains(out, 'the last good checkpoint stays: epoch 1')
    assert.is_true(T.read(o .. '/checkpoint.gam') == before)
    assert.are.equal(csv, T.read(o .. '/metrics.csv'))
    assert.are.same({'checkpoint.gam', 'metrics.csv'}, listdir(o))
  end)

  it('--resume follows a new --epochs/--lr schedule and refuses other changed flags, naming them', function()
    local o = dir .. '/flags'
    -- the per-epoch cosine (no warm-up): its lr per epoch has a closed form
    local function train_cos(extra, out) return train_run('--warmup-epochs 0 ' .. extra, out) end
    local out, rc = train_cos('--epochs 2 --stop-after 1', o)
    assert.are.equal(0, rc, out)
    out, rc = train_cos('--epochs 2 --resume --wd 0.001 --cutout 8 --momentum 0.5', o)
    assert.are.equal(1, rc, out)
    contains(out, '--wd 0.001 (checkpoint: 0.0005)')
    contains(out, '--momentum 0.5 (checkpoint: 0.9)')
    contains(out, '--cutout 8 (checkpoint: 0)')
    out, rc = train_cos('--epochs 1 --resume', o)
    assert.are.equal(1, rc, out)
    contains(out, 'has 1 epochs done; --epochs 1 leaves nothing to train')
    -- 4 epochs at lr 0.1: epoch 2 gets 0.1 * (1 + cos(pi/4)) / 2, not the old 2-epoch cosine's 0.025
    out, rc = train_cos('--epochs 4 --lr 0.1 --resume', o)
    assert.are.equal(0, rc, out)
    contains(out, 'the schedule follows the new flags: lr 0.1 cosine over 4 epochs (the checkpoint had lr 0.05 over 2)')
    local want = 0.1 * (1 + math.cos(math.pi / 4)) / 2
    contains(out, string.format('lr at epoch 2: %g', want))
    local lrs = {}
    for line in io.lines(o .. '/metrics.csv') do lrs[#lrs + 1] = line:match('^%d+,[^,]*,[^,]*,[^,]*,[^,]*,([^,]*)') end
    assert.are.equal(4, #lrs)
    assert.are.equal(0.05, tonumber(lrs[1]))
    assert.is_true(math.abs(tonumber(lrs[2]) - want) < 1e-7)
    assert.is_true(tonumber(lrs[4]) > 0 and tonumber(lrs[4]) < tonumber(lrs[3]))
  end)

  it('--resume follows a new --epochs/--lr with the per-step warm-up schedule too', function()
    local function lr_column(path)
      local l = {}
      for line in io.lines(path) do l[#l + 1] = line:match('^%d+,[^,]*,[^,]*,[^,]*,[^,]*,([^,]*)') end
      return l
    end
    local o, fresh = dir .. '/steps', dir .. '/steps-fresh'
    local out, rc = train_run('--warmup-epochs 0.5 --epochs 2 --stop-after 1', o)
    assert.are.equal(0, rc, out)
    out, rc = train_run('--warmup-epochs 0.5 --epochs 3 --lr 0.1 --resume', o)
    assert.are.equal(0, rc, out)
    contains(out, 'lr 0.1 warm-up and cosine per step over 3 epochs (the checkpoint had lr 0.05 over 2)')
    out, rc = train_run('--warmup-epochs 0.5 --epochs 3 --lr 0.1', fresh)
    assert.are.equal(0, rc, out)
    local resumed, want = lr_column(o .. '/metrics.csv'), lr_column(fresh .. '/metrics.csv')
    assert.are.equal(3, #resumed)
    for e = 2, 3 do assert.are.equal(want[e], resumed[e]) end   -- epochs 2-3 as a run started with the new flags
  end)

  it('checks the output folder before any work and names the cause', function()
    write(dir .. '/afile', 'x')
    local out, rc = train('--epochs 1', dir .. '/afile/sub')
    assert.are.equal(1, rc, out)
    contains(out, 'output folder ' .. dir .. '/afile/sub: cannot make ' .. dir .. '/afile/sub: Not a directory')
    out, rc = train('--epochs 1', dir .. '/afile')
    assert.are.equal(1, rc, out)
    contains(out, 'output folder ' .. dir .. '/afile: it exists but is not a folder')
    os.execute('mkdir -p ' .. q(dir .. '/ro') .. ' && chmod 555 ' .. q(dir .. '/ro'))
    if select(2, run('touch ' .. q(dir .. '/ro/x'))) ~= 0 then  -- root may write anywhere
      out, rc = train('--epochs 1', dir .. '/ro')
      assert.are.equal(1, rc, out)
      contains(out, 'output folder ' .. dir .. '/ro is not writable: Permission denied')
    end
    out, rc = train('--epochs 1', '/proc/gamlua-out')
    assert.are.equal(1, rc, out)
    contains(out, 'output folder /proc/gamlua-out: cannot make /proc/gamlua-out')
    assert.is_nil(out:find('epoch   1', 1, true))
  end)
end)
