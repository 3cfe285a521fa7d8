-- Reproducibility across machines (README, "Reproducibility across machines"):
-- a short seeded run (tests/fixtures/repro_run.lua: cnn_small, 6 GAM steps on
-- synthetic images, one thread) must give the same parameter bits as the
-- committed result of its x86-64 level, computed by the portable build
-- (-march=x86-64-v2) with OpenBLAS and oneDNN held to the kernels of the level
-- (lua/gam/lib.lua). A CPU checks its own level and those below it
-- (GAMLUA_CPU=v2|v3), whose kernels it can run.
local here = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.'
local T = dofile(here .. '/helpers.lua')
local q, run = T.q, T.run
local gamlua = T.gamlua()

-- fnv-1a 64 of the float32 parameters after the run, and their sum, per level
local EXPECTED = {
  v4 = 'params 901cda88449bc281 -3099.511824',  -- AVX-512: SkylakeX / AVX512_CORE kernels
  v3 = 'params aa2b3197de26d298 -3099.470051',  -- AVX2 + FMA: Haswell / AVX2
  v2 = 'params 6a3d84e9cbc43b56 -3099.447243',  -- SSE4.2: Nehalem / SSE41
}

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

  it('matches the committed result of its ISA level and of the levels below (portable build)', function()
    if jit.arch ~= 'x64' or not cpu_has('sse4_2') then
      pending('the committed results are for x86-64 CPUs')
      return
    end
    if build_is_native() then
      pending('this build is NATIVE=1 (-march=native): its numbers are its CPU\'s own')
      return
    end
    local levels = {'v2'}
    if cpu_has('avx2') and cpu_has('fma') then levels[#levels + 1] = 'v3' end
    if cpu_has('avx512f') and cpu_has('avx512bw') and cpu_has('avx512vl') and cpu_has('avx512dq')
       and cpu_has('avx512cd') and #levels == 2 then
      levels[#levels + 1] = 'v4'
    end
    for _, l in ipairs(levels) do assert.are.equal(EXPECTED[l], probe('GAMLUA_CPU=' .. l, 1), 'level ' .. l) end
    assert.are.equal(EXPECTED[levels[#levels]], probe('', 1))   -- the default is the CPU's level
  end)

  it('keeps library variables the user set', function()
    if not (cpu_has('avx2') and cpu_has('fma')) then pending('needs AVX2 and FMA') return end
    assert.are.equal(EXPECTED.v3, probe('OPENBLAS_CORETYPE=Haswell ONEDNN_MAX_CPU_ISA=AVX2', 1))
  end)
end)
