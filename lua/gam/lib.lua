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

-- Same numbers on every machine: OpenBLAS and oneDNN pick their kernels by the
-- CPU at run time, and kernels of another vector width add in another order, so
-- a seeded run on an AVX-512 machine and on an AVX2 one part after a few steps.
-- Before libgam (and so both libraries) is loaded, both are held to their AVX2
-- kernels on every CPU that has AVX2 and FMA (x86-64-v3), unless the variables
-- are set already or GAMLUA_CPU=native asks for the fastest kernels of this CPU.
-- (README, "Reproducibility across machines".)
local function pin_cpu_kernels()
  if os.getenv('GAMLUA_CPU') == 'native' or jit.arch ~= 'x64' then return end
  local f = io.open('/proc/cpuinfo', 'r')
  local info = f and f:read('*a') or ''
  if f then f:close() end
  local flags = ' ' .. (info:match('\nflags%s*:([^\n]*)') or '') .. ' '
  if not (flags:find(' avx2 ', 1, true) and flags:find(' fma ', 1, true)) then return end
  pcall(ffi.cdef, 'int setenv(const char *name, const char *value, int overwrite);')
  ffi.C.setenv('OPENBLAS_CORETYPE', 'Haswell', 0)
  ffi.C.setenv('ONEDNN_MAX_CPU_ISA', 'AVX2', 0)
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
