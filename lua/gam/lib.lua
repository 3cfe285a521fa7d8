-- gam.lib — loads libgam and declares its API to the FFI.
--
-- This is the one module that declares C. The engine's declarations are not
-- written here either: libgam carries the FFI region of
-- engine/gam.h as a string (gam_cdef), so the header and the binding cannot
-- drift apart. The library is looked for, in order, at $GAMLUA_LIB, where the
-- gamlua host says it is, beside this package in the build tree, where
-- `make install` puts it, in the package folder (gam/libgam.so), as libgam.so
-- in each folder of package.cpath (where `luarocks make` puts it), and last on
-- the system library path. So plain `luajit -e 'require "gam"'` works from
-- the build tree (LUA_PATH='lua/?.lua;lua/?/init.lua;;'), from a luarocks tree
-- (eval "$(luarocks path)"), or anywhere with GAMLUA_LIB=/path/to/libgam.so.
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
  list[#list + 1] = root .. '/gam/libgam.so'                  -- beside the package's own files
  -- a rock (luarocks make): libgam.so where C modules go, <tree>/lib/lua/5.1, on package.cpath
  for template in package.cpath:gmatch('[^;]+') do
    if template:match('%?%.so$') then list[#list + 1] = (template:gsub('%?', 'libgam')) end
  end
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

local env = os.getenv('GAMLUA_LIB')
if env and env ~= '' and not exists(env) then
  error('gam: GAMLUA_LIB=' .. env .. ' names no readable file (unset it, or point it at a libgam.so)', 0)
end

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

-- The package's only other C declarations: the Lua tensor handle (gam.tensor
-- gives it its metatype) and the C library calls gam.sys wraps, under
-- private names (asm labels) so that a script may still declare the originals.
ffi.cdef [[
typedef struct gam_handle { gam_tensor *t; } gam_handle;
struct gam_timespec { long tv_sec; long tv_nsec; };
int gam_libc_clock_gettime(int clk_id, struct gam_timespec *tp) __asm__("clock_gettime");
int gam_libc_isatty(int fd) __asm__("isatty");
int gam_libc_mkdir(const char *path, unsigned int mode) __asm__("mkdir");
char *gam_libc_strerror(int errnum) __asm__("strerror");
]]

registry['gam.lib'] = C
return C
