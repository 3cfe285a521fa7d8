-- Jobs started with mpirun from a test (2 ranks, one thread each): a rank
-- that raises ends the whole job with its message, never a hang.
local here = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.'
local gamlua = dofile(here .. '/helpers.lua').gamlua()

local function has_mpirun()
  return os.execute('command -v mpirun >/dev/null 2>&1') == 0
end

-- runs cmd (with a 120 s limit); returns its output and exit status
local function run(cmd)
  local p = io.popen('timeout 120 ' .. cmd .. ' 2>&1; echo "exit=$?"')
  local out = p:read('*a')
  p:close()
  local rc = tonumber(out:match('exit=(%d+)%s*$'))
  return out, rc
end

local MPIRUN = 'env OMP_NUM_THREADS=1 mpirun --allow-run-as-root --oversubscribe --bind-to none '
               .. '-np 2 -x OMP_NUM_THREADS '

describe('mpirun jobs', function()
  it('mpirun is installed (make deps installs openmpi-bin)', function()
    assert.is_true(has_mpirun())
  end)

  it('a rank that raises ends the job with its message, never a hang', function()
    local out, rc = run(MPIRUN .. gamlua .. ' ' .. here .. '/dist/scripts/crash.lua')
    assert.are_not.equal(0, rc)
    assert.are_not.equal(124, rc, 'the job hung:\n' .. out)
    assert.truthy(out:find('rank 1 fails on purpose (plain)', 1, true), out)
    -- (Open MPI's own MPI_ABORT notice is not checked: it sometimes fails to print under load)
    assert.falsy(out:find('should never get here', 1, true), out)
  end)
end)

-- train_cifar.lua under mpirun: one metrics.csv and one checkpoint (rank 0's),
-- a resumed 2-process run ends as an uninterrupted one, a different process
-- count cannot resume, and a rank that fails ends the job with its message.
describe('train_cifar under mpirun', function()
  local T = dofile(here .. '/helpers.lua')
  local dir = T.tmpname()
  local TRAIN = gamlua .. ' ' .. here .. '/../scripts/train_cifar.lua --dataset FashionMNIST --arch cnn_small '
                .. '--opt gam --train-limit 64 --test-limit 48 --batch-size 16 --eval-batch-size 48 --threads 1 '
                .. '--progress none --epochs 2 --sync every_pass '
  setup(function() os.execute('mkdir -p ' .. dir) end)
  teardown(function() os.execute('rm -rf ' .. dir) end)

  local function rows(path)
    local r = {}
    for line in io.lines(path) do r[#r + 1] = line end
    return r
  end
  -- the numbers of an epoch's row (the two timing columns left out)
  -- a metrics.csv row without its timing columns (10: seconds, 11: images per second)
local function metrics(row)
  local f = {}
  for v in (row .. ','):gmatch('([^,]*),') do f[#f + 1] = v end
  table.remove(f, 11)
  table.remove(f, 10)
  return table.concat(f, ',')
end

  it('2 processes: one metrics.csv and checkpoint; stop + resume equals an uninterrupted run', function()
    local out, rc = run(MPIRUN .. TRAIN .. '--out ' .. dir .. '/full')
    assert.are.equal(0, rc, out)
    assert.truthy(out:find('data-parallel: 2 processes (MPI), batch 16 per process = 32 global', 1, true), out)
    local _, n = out:gsub('epoch   2/2', '')
    assert.are.equal(1, n, 'only rank 0 prints:\n' .. out)
    local full = rows(dir .. '/full/metrics.csv')
    assert.are.equal(3, #full)
    assert.is_true(io.open(dir .. '/full/checkpoint.gam', 'rb') ~= nil)
    out, rc = run(MPIRUN .. TRAIN .. '--out ' .. dir .. '/part --stop-after 1')
    assert.are.equal(0, rc, out)
    out, rc = run(MPIRUN .. TRAIN .. '--out ' .. dir .. '/part --resume')
    assert.are.equal(0, rc, out)
    local part = rows(dir .. '/part/metrics.csv')
    assert.are.equal(3, #part)
    assert.are.equal(metrics(full[3]), metrics(part[3]))
    -- one process cannot resume a 2-process run
    out, rc = run(TRAIN .. '--out ' .. dir .. '/part --resume')
    assert.are_not.equal(0, rc)
    assert.truthy(out:find('was written by a run of 2 process(es), this run has 1', 1, true), out)
  end)

  it('a rank that fails ends the job with its message', function()
    -- rank 1 is given a dataset folder that does not exist (MPMD command line)
    local cmd = 'env OMP_NUM_THREADS=1 mpirun --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS '
                .. '-np 1 ' .. TRAIN .. '--out ' .. dir .. '/crash : -np 1 ' .. TRAIN .. '--out ' .. dir .. '/crash '
                .. '--data ' .. dir .. '/no-such-folder'
    local out, rc = run(cmd)
    assert.are_not.equal(0, rc)
    assert.are_not.equal(124, rc, 'the job hung:\n' .. out)
    assert.truthy(out:find('[rank 1 of 2]: train_cifar:', 1, true), out)
    assert.truthy(out:find('no-such-folder', 1, true), out)
  end)
end)
