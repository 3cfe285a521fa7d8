-- Reproducibility across machines (README, "Reproducibility across machines"):
-- a short seeded run (tests/fixtures/repro_run.lua: cnn_small, 6 GAM steps on
-- synthetic images, one thread) must give the same parameter bits as the
-- committed result, computed by the portable build (-march=x86-64-v2) with
-- OpenBLAS and oneDNN held to their AVX2 kernels (lua/gam/lib.lua), the
-- default on every x86-64 CPU with AVX2 and FMA.
local here = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.'
local T = dofile(here .. '/helpers.lua')
local q, run = T.q, T.run
local gamlua = T.gamlua()

-- fnv-1a 64 of the float32 parameters after the run, and their sum
local EXPECTED = 'params aa2b3197de26d298 -3099.470051'

local function cpu_has(flag)
  local f = io.open('/proc/cpuinfo')
  local s = f and f:read('*a') or ''
  if f then f:close() end
  return (' ' .. (s:match('\nflags%s*:([^\n]*)') or '') .. ' '):find(' ' .. flag .. ' ', 1, true) ~= nil
end

local function build_is_native()
  local f = io.open(T.dirname(gamlua) .. '/config.stamp')
  local s = f and f:read('*a') or ''
  if f then f:close() end
  return s:find('march=native', 1, true) ~= nil
end

local function probe(env, threads)
  local out, rc = run(string.format('env -u GAMLUA_CPU -u OPENBLAS_CORETYPE -u ONEDNN_MAX_CPU_ISA %s %s %s %d', env,
                                    q(gamlua), q(here .. '/fixtures/repro_run.lua'), threads or 1))
  assert.are.equal(0, rc, out)
  return (out:match('params %x+ %S+'))
end

describe('a seeded run', function()
  it('gives the same bits twice in a row', function()
    local a = probe('', 1)
    assert.is_truthy(a)
    assert.are.equal(a, probe('', 1))
  end)

  it('matches the committed result of the portable build (x86-64 with AVX2 and FMA)', function()
    if jit.arch ~= 'x64' or not (cpu_has('avx2') and cpu_has('fma')) then
      pending('the committed result is for x86-64 CPUs with AVX2 and FMA')
      return
    end
    if build_is_native() then
      pending('this build is NATIVE=1 (-march=native): its numbers are its CPU\'s own')
      return
    end
    assert.are.equal(EXPECTED, probe('', 1))
  end)

  it('does not depend on which of its kernels OpenBLAS or oneDNN would pick on this CPU', function()
    if not (cpu_has('avx2') and cpu_has('fma')) then pending('needs AVX2 and FMA') return end
    local pinned = probe('', 1)
    -- what a bigger CPU would choose by itself must not leak in: the pin holds
    if cpu_has('avx512f') then
      assert.are.equal(pinned, probe('OPENBLAS_CORETYPE=Haswell ONEDNN_MAX_CPU_ISA=AVX2', 1))
    end
    -- and GAMLUA_CPU=native really lets them choose (a different run on an AVX-512 CPU)
    if cpu_has('avx512f') then assert.are_not.equal(pinned, probe('GAMLUA_CPU=native', 1)) end
  end)
end)
