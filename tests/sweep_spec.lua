-- scripts/sweep.lua, scripts/plot.lua and their shared scripts/study_util.lua:
-- value lists and grids, CSV files and statistics as units; then one tiny
-- sweep end to end (an interrupted run resumed, a finished sweep skipped)
-- and its pictures.
local here = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.'
local root = here .. '/..'
local T = dofile(here .. '/helpers.lua')
local q, contains = T.q, T.contains
local U = dofile(root .. '/scripts/study_util.lua')
local gamlua = T.gamlua()
local sweep = q(gamlua) .. ' ' .. q(root .. '/scripts/sweep.lua')
local plot = q(gamlua) .. ' ' .. q(root .. '/scripts/plot.lua')

local function raises(fn, msg)
  local ok, err = pcall(fn)
  assert.is_false(ok)
  contains(tostring(err), msg)
end

describe('study_util', function()
  it('expands comma lists and ranges of values', function()
    assert.are.same({'sgd', 'sam', 'gam'}, U.expand_values('opt', 'sgd,sam,gam'))
    assert.are.same({'0', '1', '2', '3', '4'}, U.expand_values('seed', '0-4'))
    assert.are.same({'0', '1', '2', '7'}, U.expand_values('seed', '0-2,7'))
    assert.are.same({'0.1'}, U.expand_values('lr', '0.1'))
    assert.are.same({'1e-3', '5e-4'}, U.expand_values('wd', '1e-3,5e-4'))
    raises(function() U.expand_values('seed', '4-2') end, "--seed: range '4-2' goes backwards")
    raises(function() U.expand_values('opt', 'sgd,,gam') end, "--opt: empty item in 'sgd,,gam'")
    raises(function() U.expand_values('opt', '') end, '--opt: no value')
  end)

  it('parses a grid of flags and expands every combination, the last flag fastest', function()
    local g = U.parse_grid {'--opt', 'sgd,gam', '--seed=0-2', '--no-flip', '--epochs', '3'}
    assert.are.equal(4, #g)
    assert.is_true(g[3].switch)
    local points = U.expand_grid(g)
    assert.are.equal(6, #points)
    assert.are.same({'--opt', 'sgd', '--seed', '0', '--no-flip', '--epochs', '3'}, U.point_args(points[1]))
    assert.are.same({'--opt', 'sgd', '--seed', '1', '--no-flip', '--epochs', '3'}, U.point_args(points[2]))
    assert.are.same({'--opt', 'gam', '--seed', '2', '--no-flip', '--epochs', '3'}, U.point_args(points[6]))
    assert.are.equal('opt-gam_seed-2', U.point_name(points[6], g))
    assert.are.equal('opt=gam', U.point_config(points[6], g))
    local one = U.parse_grid {'--opt', 'sgd'}
    assert.are.equal('run', U.point_name(U.expand_grid(one)[1], one))
    raises(function() U.parse_grid {'--seed', '0', '--seed', '1'} end, '--seed is given twice')
    raises(function() U.parse_grid {'gam'} end, "'gam' is not a flag")
  end)

  it('computes mean and sample standard deviation', function()
    local m, s = U.mean_std {1, 2, 3, 4}
    assert.are.equal(2.5, m)
    assert.is_true(math.abs(s - math.sqrt(5 / 3)) < 1e-12)
    assert.are.same({7, 0}, {U.mean_std {7}})
    assert.is_nil(U.mean_std {})
  end)

  it('writes CSV files atomically and reads them back; bad files give clear errors', function()
    local dir = T.tmpdir()
    U.write_csv(dir .. '/a.csv', {'x', 'y', 'z'}, {{x = 1, y = 'b'}, {x = 0.5, z = 2}})
    assert.is_false(U.file_exists(dir .. '/a.csv.tmp'))
    local header, rows = U.read_csv(dir .. '/a.csv')
    assert.are.same({'x', 'y', 'z'}, header)
    assert.are.same({{x = '1', y = 'b', z = ''}, {x = '0.5', y = '', z = '2'}}, rows)
    raises(function() U.read_csv(dir .. '/none.csv') end, 'cannot read ' .. dir .. '/none.csv')
    T.write(dir .. '/bad.csv', 'a,b\n1,2,3\n')
    raises(function() U.read_csv(dir .. '/bad.csv') end, 'bad.csv line 2: 3 fields, the header has 2')
    T.write(dir .. '/empty.csv', '')
    raises(function() U.read_csv(dir .. '/empty.csv') end, 'empty CSV file')
    os.execute('rm -rf ' .. q(dir))
  end)
end)

describe('scripts/sweep.lua', function()
  it('rejects bad grids and options with a clear message', function()
    for flags, msg in pairs {
      ['--opt sgd'] = "missing option '--out'",
      ['--out /tmp/x --seed 3-1'] = "--seed: range '3-1' goes backwards",
      ['--out /tmp/x --jobs 0'] = '--jobs must be a whole number >= 1',
      ['--out /tmp/x -- --out y'] = '--out is set by the sweep',
      ['--out /tmp/x -- stray'] = "'stray' is not a flag",
    } do
      local out, code = T.run(sweep .. ' ' .. flags)
      assert.are_not.equal(0, code, flags)
      contains(out, msg)
    end
  end)

  it('runs a grid, resumes an interrupted run, skips finished runs, and plots them', function()
    local dir = T.tmpdir()
    local grid = ' -- --dataset FashionMNIST --opt sgd --seed 0-1 --epochs 2 --train-limit 64 --test-limit 32 '
                 .. '--batch-size 32 --eval-batch-size 32'
    -- seed 1 was interrupted after its first epoch
    local _, code0 = T.run(q(gamlua) .. ' ' .. q(root .. '/scripts/train_cifar.lua') .. ' --dataset FashionMNIST '
                           .. '--opt sgd --seed 1 --epochs 2 --train-limit 64 --test-limit 32 --batch-size 32 '
                           .. '--eval-batch-size 32 --threads 1 --stop-after 1 --out ' .. q(dir .. '/seed-1'))
    assert.are.equal(0, code0)
    local out, code = T.run(sweep .. ' --out ' .. q(dir) .. ' --jobs 2 --cores 2 --flatness '
                            .. q('--flatness-args=--examples 16 --batch-size 16 --iters 2 --samples 2 --steps 2')
                            .. grid)
    assert.are.equal(0, code, out)
    contains(out, 'sweep: 2 runs (2 to do), 2 at a time, 1 thread(s) each')
    contains(T.read(dir .. '/seed-1/log.txt'), 'resumed from ' .. dir .. '/seed-1/checkpoint.gam after epoch 1')
    local header, rows = U.read_csv(dir .. '/sweep.csv')
    assert.are.same({'run', 'config', 'dataset', 'opt', 'seed'}, {unpack(header, 1, 5)})
    assert.are.equal(2, #rows)
    for k, r in ipairs(rows) do
      assert.are.equal('seed-' .. (k - 1), r.run)
      assert.are.equal('done', r.status)
      assert.are.equal('2', r.epochs_done)
      local acc = tonumber(r.test_acc)
      assert.is_true(acc >= 0 and acc <= 1)
      assert.is_true(tonumber(r.seconds) > 0)
      -- seconds: the epochs' sum; seconds_per_epoch: their median (2 epochs: the mean of both)
      local _, m = U.read_csv(dir .. '/' .. r.run .. '/metrics.csv')
      local s1, s2 = tonumber(m[1].seconds), tonumber(m[2].seconds)
      assert.is_true(math.abs(tonumber(r.seconds) - (s1 + s2)) < 1e-6 * (s1 + s2) + 1e-3, r.seconds)
      assert.is_true(math.abs(tonumber(r.seconds_per_epoch) - (s1 + s2) / 2) < 1e-6 * (s1 + s2) + 1e-3)
    end
    assert.are.equal(3, U.median {5, 1, 3})
    assert.are.equal(2.5, U.median {4, 1, 2, 3})
    assert.is_nil(U.median {})
    assert.is_truthy(out:match('\nall%s+2%s'), out)   -- the summary table: one configuration, two runs
    if not U.file_exists(root .. '/scripts/flatness.lua') then
      contains(out, 'flatness.lua does not exist')
    else -- the real scripts/flatness.lua measured both models (tiny settings)
      for _, r in ipairs(rows) do
        assert.is_true(tonumber(r.lambda_max) ~= nil and tonumber(r.trace) ~= nil and tonumber(r.flatness) ~= nil)
      end
    end

    local log_before = T.read(dir .. '/seed-0/log.txt')
    out, code = T.run(sweep .. ' --out ' .. q(dir) .. ' --jobs 2' .. grid)
    assert.are.equal(0, code, out)
    contains(out, 'sweep: 2 runs (0 to do)')
    assert.are.equal(log_before, T.read(dir .. '/seed-0/log.txt'))

    out, code = T.run(plot .. ' curves ' .. q(dir .. '/seed-0') .. ' ' .. q(dir .. '/seed-1/metrics.csv'))
    assert.are.equal(0, code, out)
    contains(out, 'wrote ' .. dir .. '/seed-0/curves.png')
    assert.are.equal('\137PNG', T.read(dir .. '/seed-0/curves.png'):sub(1, 4))
    out, code = T.run(plot .. ' bars ' .. q(dir .. '/sweep.csv') .. ' --by seed --out ' .. q(dir .. '/b.png'))
    assert.are.equal(0, code, out)
    assert.are.equal('\137PNG', T.read(dir .. '/b.png'):sub(1, 4))

    -- two metrics: two panels side by side in one picture, named after both
    out, code = T.run(plot .. ' bars ' .. q(dir .. '/sweep.csv') .. ' --by seed --metric test_acc,seconds')
    assert.are.equal(0, code, out)
    local png = T.read(dir .. '/bars_test_acc-seconds.png')
    assert.are.equal('\137PNG', png:sub(1, 4))
    local w = 0
    for i = 17, 20 do w = w * 256 + png:byte(i) end   -- IHDR: the width
    assert.are.equal(840, w)
    out, code = T.run(plot .. ' bars ' .. q(dir .. '/sweep.csv') .. ' --metric test_acc,nope')
    assert.are.equal(2, code)
    contains(out, "has no column 'nope'")

    out, code = T.run(plot .. ' bars ' .. q(dir .. '/sweep.csv') .. ' --metric nope')
    assert.are.equal(2, code)
    contains(out, "has no column 'nope'")
    out, code = T.run(plot .. ' curves ' .. q(dir .. '/nowhere'))
    assert.are.equal(2, code)
    contains(out, 'cannot read ' .. dir .. '/nowhere/metrics.csv')
    out, code = T.run(plot .. ' curves ' .. q(dir .. '/sweep.csv'))
    assert.are.equal(2, code)
    contains(out, 'no column epoch')
    os.execute('rm -rf ' .. q(dir))
  end)

  it('measures finished runs with scripts/flatness.lua and collects lambda_max, trace and r1', function()
    -- the sweep beside a stand-in flatness.lua that writes flatness.lua's CSV columns
    local dir = T.tmpdir()
    os.execute('mkdir -p ' .. q(dir .. '/scripts'))
    for _, f in ipairs {'sweep.lua', 'study_util.lua'} do
      T.write(dir .. '/scripts/' .. f, T.read(root .. '/scripts/' .. f))
    end
    T.write(dir .. '/scripts/flatness.lua', [[
local ck, csv, threads
for i = 1, #arg do
  if arg[i] == '--csv' then csv = arg[i + 1] elseif arg[i] == '--threads' then threads = arg[i + 1]
  elseif not arg[i - 1] or not arg[i - 1]:match('^%-%-') then ck = ck or arg[i] end
end
assert(io.open(ck, 'rb'), 'no checkpoint ' .. tostring(ck)):close()
local f = assert(io.open(csv, 'w'))
f:write('time,checkpoint,lambda_max,lambda_iters,trace,trace_se,r0,r1,seconds\n')
f:write('t,' .. ck .. ',12.5,7,340,3,0.1,0.25,' .. threads .. '\n')
f:close()
]])
    local out, code = T.run(q(gamlua) .. ' ' .. q(dir .. '/scripts/sweep.lua') .. ' --out ' .. q(dir .. '/s')
                            .. ' --flatness --script ' .. q(root .. '/scripts/train_cifar.lua') .. ' --cores 1'
                            .. ' -- --dataset FashionMNIST --opt sgd --epochs 1 --train-limit 64 --test-limit 32'
                            .. ' --batch-size 32 --eval-batch-size 32')
    assert.are.equal(0, code, out)
    contains(out, 'sweep: [2/2')
    contains(out, 'flatness run done')
    local _, rows = U.read_csv(dir .. '/s/sweep.csv')
    assert.are.equal(1, #rows)
    assert.are.same({'12.5', '340', '0.25'}, {rows[1].lambda_max, rows[1].trace, rows[1].flatness})
    assert.is_truthy(out:match('λmax%s+trace%s+flatness'), out)
    os.execute('rm -rf ' .. q(dir))
  end)
end)
