-- The training program scripts/train_cifar.lua, end to end on a slice of the
-- real Fashion-MNIST: flags and help, the missing-CIFAR message, metrics and
-- checkpoints, --resume matching an uninterrupted run exactly, and the stop on
-- a non-finite loss that keeps the last good checkpoint.
local gam = require 'gam'

local here = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.'
local root = here .. '/..'
local T = dofile(here .. '/helpers.lua')
local q, read, contains = T.q, T.read, T.contains
local gamlua = T.gamlua()
local script = root .. '/scripts/train_cifar.lua'

-- runs the program; returns its output (stdout and stderr) and exit code
local function run(flags)
  local out = os.tmpname()
  local cmd = string.format('%s %s %s > %s 2>&1; echo "rc=$?" >> %s', q(gamlua), q(script), flags, q(out), q(out))
  os.execute(cmd)
  local f = assert(io.open(out, 'rb'))
  local s = f:read('*a')
  f:close()
  os.remove(out)
  local rc = tonumber(s:match('rc=(%d+)%s*$'))
  return s, rc
end

-- the rows of metrics.csv without the timing columns
local function metrics(path)
  local rows = {}
  for line in io.lines(path) do
    local cols = {}
    for c in (line .. ','):gmatch('([^,]*),') do cols[#cols + 1] = c end
    rows[#rows + 1] = table.concat(cols, ',', 1, 9)
  end
  return rows
end

local SMALL = '--dataset FashionMNIST --arch cnn_small --opt gam --train-limit 96 --test-limit 64 '
              .. '--batch-size 32 --eval-batch-size 64 --threads 1 --progress lines --lr 0.05'
-- the reference's schedule (no warm-up, constant radii), which is not Fashion-MNIST's default
local REFERENCE = ' --warmup-epochs 0 --radii constant'

describe('scripts/train_cifar.lua', function()
  local dir
  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    os.execute('mkdir -p ' .. dir)
  end)
  teardown(function() os.execute('rm -rf ' .. q(dir)) end)

  it('runs --device cuda on the CPU, saying so once, when no GPU is available', function()
    local out, rc = run(SMALL .. REFERENCE .. ' --epochs 1 --device cuda --out ' .. q(dir .. '/dev'))
    assert.are.equal(0, rc, out)
    if gam.cuda_available() then
      assert.truthy(out:find(' on cuda', 1, true), out)
    else
      local _, n = out:gsub('no CUDA device is available', '')
      assert.are.equal(1, n, out)
      assert.truthy(out:find('running on the CPU', 1, true), out)
      assert.truthy(out:find(' on cpu', 1, true), out)
      assert.truthy(out:find('final test accuracy', 1, true), out)
    end
  end)

  it('lists every flag with its default in --help', function()
    local out, rc = run('--help')
    assert.are.equal(0, rc)
    for _, f in ipairs {'arch', 'dataset', 'data', 'epochs', 'batch-size', 'lr', 'wd', 'momentum', 'base-opt',
                        'opt', 'grad-rho', 'grad-norm-rho', 'grad-beta-0', 'grad-beta-1', 'grad-gamma',
                        'gam-mode', 'rho', 'gsam-alpha', 'label-smoothing', 'seed', 'device', 'threads', 'out',
                        'resume', 'train-limit', 'test-limit', 'steps-per-epoch', 'stop-after', 'val-split',
                        'warmup-epochs', 'radii'} do
      assert.is_truthy(out:find('\n  %-%-' .. f:gsub('%-', '%%-') .. '[ =]'), 'flag --' .. f .. ' missing in:\n' .. out)
    end
    for _, d in ipairs {'[200]', '[128]', '[0.0005]', '[0.9]', '[SGD]', '[gam]', '[0.1]', '[reference]',
                        '[0]', '[auto]', '[CIFAR10]', '0.1; 0.05 for FashionMNIST'} do
      contains(out, d)
    end
    contains(out, 'CIFAR-100/ResNet 0.2 0.02 0.5 0.6 0.03')
    contains(out, '0; 0.5 for FashionMNIST')
    contains(out, 'constant; follow for FashionMNIST')
  end)

  it('rejects unknown flags and bad values', function()
    local out, rc = run('--epochz 3')
    assert.are_not.equal(0, rc)
    contains(out, "train_cifar: unknown option '--epochz'; did you mean '--epochs'? (see --help)")
    out, rc = run('--epochs 3 stray')
    assert.are.equal(1, rc)
    contains(out, "unknown argument 'stray'")
    out = run('--epochs many')
    contains(out, "--epochs needs a number, got 'many'")
    out = run('--epochs 2.5')
    contains(out, '--epochs needs an integer, got 2.5')
    out = run('--lr')
    contains(out, "option '--lr' requires an argument")
    out = run('--no-flip=yes')
    contains(out, "option '--no-flip' does not take arguments")
    out = run('--opt adam')
    contains(out, '--opt must be sgd, sam, asam, gsam, gam or gam-original')
    out = run('--dataset MNIST')
    contains(out, '--dataset must be CIFAR10, CIFAR100 or FashionMNIST')
    out = run('--radii sometimes')
    contains(out, "--radii must be follow or constant, got 'sometimes'")
    out = run('--epochs 2 --warmup-epochs 2')
    contains(out, '--warmup-epochs (2) must be less than --epochs (2)')
    out = run('--val-split=-1')
    contains(out, '--val-split must be >= 0')
    out, rc = run(SMALL .. ' --val-split 96 --out ' .. q(dir .. '/v'))
    assert.are.equal(1, rc)
    contains(out, '--val-split 96 leaves no training image (96 in all)')
  end)

  it('says where the CIFAR archive goes when it is missing', function()
    local out, rc = run('--dataset CIFAR100 --data ' .. q(dir .. '/nowhere'))
    assert.are.equal(1, rc)
    contains(out, dir .. '/nowhere/cifar-100-binary')
    contains(out, 'cifar-100-binary.tar.gz')
    contains(out, '--dataset FashionMNIST')
  end)

  it('trains, writes metrics and checkpoints, and a resumed run matches an uninterrupted one', function()
    local a, b = dir .. '/a', dir .. '/b'
    local out, rc = run(SMALL .. REFERENCE .. ' --epochs 2 --out ' .. q(a))
    assert.are.equal(0, rc, out)
    assert.is_truthy(out:match('final test accuracy: %d+%.%d%d%%'), out)
    assert.is_truthy(out:match('best test accuracy: %d+%.%d%d%% at epoch [12]'), out)
    assert.is_truthy(out:match('epoch   1/2  train loss %d+%.%d+ acc [%d.]+%%  test loss %d+%.%d+ acc [%d.]+%%  ' ..
                               'lr 0%.050000  rho\' 0%.03 rho 0%.2  time'), out)
    contains(out, 'epoch 2/2 3/3')            -- progress lines
    local rows = metrics(a .. '/metrics.csv')
    assert.are.equal(3, #rows)
    assert.are.equal('epoch,train_loss,train_acc,test_loss,test_acc,lr,grad_rho,grad_norm_rho,rho', rows[1])
    assert.is_truthy(rows[3]:match('^2,.*,0%.025,0%.03,0%.2,$'), rows[3])
    local ck = gam.load(a .. '/checkpoint.gam')
    assert.are.equal(2, ck.epoch)
    assert.are.equal('gamlua train_cifar checkpoint', ck.kind)
    assert.are.equal('cnn_small', ck.args.arch)
    assert.is_true(gam.is_tensor(ck.model['0.weight']))
    assert.are.equal('GAM', ck.optimizer.name)

    -- the same run, interrupted after epoch 1 and resumed
    out, rc = run(SMALL .. REFERENCE .. ' --epochs 2 --stop-after 1 --out ' .. q(b))
    assert.are.equal(0, rc, out)
    contains(out, 'stopped after epoch 1')
    assert.is_nil(out:find('final test accuracy', 1, true))
    assert.are.equal(1, gam.load(b .. '/checkpoint.gam').epoch)
    out, rc = run(SMALL .. REFERENCE .. ' --epochs 2 --resume --out ' .. q(b))
    assert.are.equal(0, rc, out)
    contains(out, 'resumed from ' .. b .. '/checkpoint.gam after epoch 1')
    assert.is_nil(out:find('epoch   1/2', 1, true))
    local cb = gam.load(b .. '/checkpoint.gam')
    assert.are.equal(2, cb.epoch)
    local names = 0
    for name, t in pairs(ck.model) do
      assert.is_true(t:allclose(cb.model[name], 0, 0), 'parameter ' .. name .. ' differs after resuming')
      names = names + 1
    end
    assert.are.equal(names, (function() local n = 0 for _ in pairs(cb.model) do n = n + 1 end return n end)())
    local sa, sb = ck.optimizer.base.state, cb.optimizer.base.state
    for i = 1, #sa do
      assert.are.equal(sa[i].step, sb[i].step)
      assert.is_true(sa[i].momentum_buffer:allclose(sb[i].momentum_buffer, 0, 0))
    end
    assert.are.same(ck.rng, cb.rng)
    assert.are.same(ck.scheduler, cb.scheduler)
    assert.are.same(metrics(a .. '/metrics.csv'), metrics(b .. '/metrics.csv'))
    -- a checkpoint of another configuration is refused
    out, rc = run(SMALL:gsub('--opt gam', '--opt sam') .. REFERENCE .. ' --epochs 3 --resume --out ' .. q(b))
    assert.are.equal(1, rc)
    contains(out, 'was made with other values of flags its saved state depends on: --opt sam (checkpoint: gam)')
  end)

  it("Fashion-MNIST's recipe: per-step warm-up then cosine, radii following the lr, a validation split; resumable",
     function()
    local a, b = dir .. '/wa', dir .. '/wb'
    -- 64 training images in 2 steps of 32 per epoch; warm-up 0.5 epochs = 1 step; 4 steps in all
    local flags = SMALL .. ' --val-split 32 --epochs 2'
    local out, rc = run(flags .. ' --out ' .. q(a))
    assert.are.equal(0, rc, out)
    contains(out, 'FashionMNIST: 64 training / 32 validation / 64 test images')
    contains(out, "lr 0.05 warm-up over 0.5 epochs then cosine per step over 2 epochs")
    contains(out, "rho' 0.03 rho 0.2 following the lr")
    assert.is_truthy(out:match('epoch   1/2  train loss [%d.]+ acc [%d.]+%%  val loss [%d.]+ acc [%d.]+%%  test loss '
                               .. '[%d.]+ acc [%d.]+%%  lr 0%.037500'), out)
    assert.is_truthy(out:match('\nfinal validation accuracy: %d+%.%d%d%%\nfinal test accuracy'), out)
    local lines = {}
    for line in io.lines(a .. '/metrics.csv') do lines[#lines + 1] = line end
    assert.are.equal(3, #lines)
    assert.is_truthy(lines[1]:match(',val_loss,val_acc$'), lines[1])
    -- the lr of each epoch's last step: cosine from step 1 (0.05) to step 4 (0): 0.0375 after step 2, 0 after 4;
    -- the radii in effect then: 0.03 and 0.2 times lr/0.05
    local row = '^%d,[^,]+,[^,]+,[^,]+,[^,]+,%s,%s,%s,,[^,]+,[^,]+,[%%d.]+,[%%d.]+$'
    assert.is_truthy(lines[2]:match(row:format(1, '0%.0375', '0%.0225', '0%.15')), lines[2])
    assert.is_truthy(lines[3]:match(row:format(2, '0', '0', '0')), lines[3])
    -- interrupted after epoch 1 and resumed: the same figures
    out, rc = run(flags .. ' --stop-after 1 --out ' .. q(b))
    assert.are.equal(0, rc, out)
    out, rc = run(flags .. ' --resume --out ' .. q(b))
    assert.are.equal(0, rc, out)
    local function strip(path)   -- metrics without the timing columns
      local rows = {}
      for line in io.lines(path) do
        local c = {}
        for f in (line .. ','):gmatch('([^,]*),') do c[#c + 1] = f end
        rows[#rows + 1] = table.concat(c, ',', 1, 9) .. ',' .. c[12] .. ',' .. c[13]
      end
      return rows
    end
    assert.are.same(strip(a .. '/metrics.csv'), strip(b .. '/metrics.csv'))
    -- another split is another run
    out, rc = run(flags:gsub('--val%-split 32', '--val-split 16') .. ' --resume --out ' .. q(b))
    assert.are.equal(1, rc)
    contains(out, '--val-split 16 (checkpoint: 32)')
  end)

  it('trains with --opt gam-original (Algorithm 1), and resumes it exactly', function()
    local a, b = dir .. '/orig-a', dir .. '/orig-b'
    local flags = SMALL:gsub('--opt gam', '--opt gam-original') .. ' --epochs 2 --grad-norm-rho 0.1 --grad-beta-1 0.2'
    local out, rc = run(flags .. ' --out ' .. q(a))
    assert.are.equal(0, rc, out)
    contains(out, 'GAM, original (Algorithm 1, Hessian-vector products): rho 0.1, alpha 0.2')
    local rows = metrics(a .. '/metrics.csv')
    assert.are.equal(3, #rows)
    local loss1 = tonumber(rows[2]:match('^1,([^,]+),'))
    assert.is_true(loss1 > 0 and loss1 < 5, rows[2])
    assert.is_truthy(rows[2]:match('^1,[^,]+,[^,]+,[^,]+,[^,]+,[^,]+,,[%d.e-]+,$'), rows[2])   -- rho only
    out, rc = run(flags .. ' --stop-after 1 --out ' .. q(b))
    assert.are.equal(0, rc, out)
    out, rc = run(flags .. ' --resume --out ' .. q(b))
    assert.are.equal(0, rc, out)
    assert.are.same(rows, metrics(b .. '/metrics.csv'))
  end)

  it('reports the radii in effect: following the lr with --radii follow, the flags with constant', function()
    for _, c in ipairs {{opt = 'gam', radii = 'follow'}, {opt = 'sam', radii = 'follow'},
                        {opt = 'gam', radii = 'constant'}} do
      local o = dir .. '/radii-' .. c.opt .. '-' .. c.radii
      local out, rc = run(SMALL:gsub('--opt gam', '--opt ' .. c.opt) .. ' --epochs 2 --warmup-epochs 0.5 --radii '
                          .. c.radii .. ' --out ' .. q(o))
      assert.are.equal(0, rc, out)
      local n = 0
      for line in io.lines(o .. '/metrics.csv') do
        local col = {}
        for v in (line .. ','):gmatch('([^,]*),') do col[#col + 1] = v end
        if col[1] ~= 'epoch' then
          local lr, k = tonumber(col[6]), 1
          if c.radii == 'follow' then k = lr / 0.05 end
          if lr > 0 and lr < 0.05 then n = n + 1 end   -- mid-cosine: following differs from the flags
          if c.opt == 'gam' then
            assert.is_true(math.abs(tonumber(col[7]) - 0.03 * k) < 1e-9, line)
            assert.is_true(math.abs(tonumber(col[8]) - 0.2 * k) < 1e-9, line)
            assert.are.equal('', col[9], line)
            contains(out, string.format("rho' %.4g rho %.4g", 0.03 * k, 0.2 * k))
          else
            assert.are.equal('', col[7], line)
            assert.is_true(math.abs(tonumber(col[9]) - 0.05 * k) < 1e-9, line)
            contains(out, string.format('rho %.4g  time', 0.05 * k))
          end
        end
      end
      assert.is_true(n >= 1, 'no epoch ended mid-cosine')
    end
  end)

  it('stops on a non-finite loss naming epoch and step, keeping the last good checkpoint', function()
    local c = dir .. '/c'
    local out, rc = run(SMALL .. REFERENCE .. ' --opt sgd --epochs 3 --stop-after 1 --out ' .. q(c))
    assert.are.equal(0, rc, out)
    -- poison the saved weights: the next step's loss is not finite
    local ck = gam.load(c .. '/checkpoint.gam')
    ck.model['11.bias']:fill_(1 / 0)
    gam.save(c .. '/checkpoint.gam', ck)
    local before = read(c .. '/checkpoint.gam')
    out, rc = run(SMALL .. REFERENCE .. ' --opt sgd --epochs 3 --resume --out ' .. q(c))
    assert.are.equal(2, rc, out)
    contains(out, 'non-finite loss at epoch 2, step 1')
    contains(out, 'the last good checkpoint is ' .. c .. '/checkpoint.gam (epoch 1)')
    assert.are.equal(before, read(c .. '/checkpoint.gam'))
    assert.are.equal(2, #metrics(c .. '/metrics.csv'))
  end)
end)
