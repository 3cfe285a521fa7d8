-- gam.lib — loads libgam and declares its API to the FFI.
--
-- The declarations are not written here: libgam carries the FFI region of
-- engine/gam.h as a string (gam_cdef), so the header and the binding cannot
-- drift apart. The library is looked for, in order, at $GAMLUA_LIB, where the
-- gamlua host says it is, beside this package in the build tree, where
-- `make install` puts it, and on the system library path.
local ffi = require 'ffi'

-- FFI declarations can be made once per process: a second load (a runner that
-- clears package.loaded between files) gets the first binding back.
local registry = debug.getregistry()
if registry['gam.lib'] then return registry['gam.lib'] end

local function exists(path)
  local f = io.open(path, 'rb')
  if f then f:close() end
  return f ~= nil
end

local function candidates()
  local list = {}
  local env = os.getenv('GAMLUA_LIB')
  if env and env ~= '' then list[#list + 1] = env end
  if rawget(_G, '_GAMLUA') and _GAMLUA.lib then list[#list + 1] = _GAMLUA.lib end
  local src = debug.getinfo(1, 'S').source:sub(2)
  local root = src:match('^(.*)/gam/lib%.lua$') or '.'
  list[#list + 1] = root .. '/../build/libgam.so'            -- lua/ beside build/
  list[#list + 1] = root .. '/../../../lib/gamlua/libgam.so' -- share/gamlua/lua -> lib/gamlua
  return list
end

-- Same numbers on every machine of one ISA level: OpenBLAS and oneDNN pick
-- their kernels by the CPU at run time, and kernels of another vector width add
-- in another order. Before libgam (and so both libraries) is loaded, both are
-- held to the kernels of the CPU's x86-64 level: v4 (AVX-512) SkylakeX /
-- AVX512_CORE, v3 (AVX2, FMA) Haswell / AVX2, v2 Nehalem / SSE41. Variables set
-- already are kept; GAMLUA_CPU=v2|v3|v4 picks a level (at most the CPU's),
-- GAMLUA_CPU=native lets the libraries choose. (README, "Reproducibility".)
local LEVELS = {v2 = {'Nehalem', 'SSE41'}, v3 = {'Haswell', 'AVX2'}, v4 = {'SkylakeX', 'AVX512_CORE'}}
local function cpu_level()
  local f = io.open('/proc/cpuinfo', 'r')
  local info = f and f:read('*a') or ''
  if f then f:close() end
  local flags = ' ' .. (info:match('\nflags%s*:([^\n]*)') or '') .. ' '
  local function has(list)
    for w in list:gmatch('%S+') do if not flags:find(' ' .. w .. ' ', 1, true) then return false end end
    return true
  end
  if has('avx512f avx512bw avx512cd avx512dq avx512vl avx2 fma') then return 'v4' end
  if has('avx2 fma') then return 'v3' end
  if has('sse4_2') then return 'v2' end
end
local function pin_cpu_kernels()
  local want = os.getenv('GAMLUA_CPU')
  if want == 'native' or jit.arch ~= 'x64' then return end
  local level = cpu_level()
  if not level then return end
  if LEVELS[want] and want < level then level = want end
  pcall(ffi.cdef, 'int setenv(const char *name, const char *value, int overwrite);')
  ffi.C.setenv('OPENBLAS_CORETYPE', LEVELS[level][1], 0)
  ffi.C.setenv('ONEDNN_MAX_CPU_ISA', LEVELS[level][2], 0)
end
pin_cpu_kernels()

local C
for _, path in ipairs(candidates()) do
  if exists(path) then
    C = ffi.load(path)
    break
  end
end
if not C then
  local ok, lib = pcall(ffi.load, 'gam')
  if not ok then
    error('gam: cannot find libgam.so (looked at ' .. table.concat(candidates(), ', ') ..
          '); build it with `make` or set GAMLUA_LIB', 0)
  end
  C = lib
end

ffi.cdef 'const char *gam_cdef(void);'
ffi.cdef(ffi.string(C.gam_cdef()))

registry['gam.lib'] = C
return C
