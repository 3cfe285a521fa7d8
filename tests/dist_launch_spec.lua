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

local MPIRUN = 'env OMP_NUM_THREADS=1 mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 -x OMP_NUM_THREADS '

describe('mpirun jobs', function()
  it('mpirun is installed (make deps installs openmpi-bin)', function()
    assert.is_true(has_mpirun())
  end)

  it('a rank that raises ends the job with its message, never a hang', function()
    local out, rc = run(MPIRUN .. gamlua .. ' ' .. here .. '/dist/scripts/crash.lua')
    assert.are_not.equal(0, rc)
    assert.are_not.equal(124, rc, 'the job hung:\n' .. out)
    assert.truthy(out:find('rank 1 fails on purpose (plain)', 1, true), out)
    assert.truthy(out:find('MPI_ABORT', 1, true), out)
    assert.falsy(out:find('should never get here', 1, true), out)
  end)
end)
