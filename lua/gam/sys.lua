-- gam.sys — the C library calls the package makes (declared by gam.lib):
-- clocks for timing, isatty and making folders.
--
--   gam.clock()        seconds from a monotonic clock
--   gam.clock('cpu')   seconds of CPU time of the process (all threads)
--   gam.isatty(fd)     true when the file descriptor fd is a terminal
--   gam.mkdir_p(dir)   makes dir and its missing parents: true, or nil and a message naming the
--                      folder that could not be made and the cause
local ffi = require 'ffi'
require 'gam.lib'

local M = {}

local CLOCKS = {monotonic = 1, cpu = 2}   -- CLOCK_MONOTONIC, CLOCK_PROCESS_CPUTIME_ID (Linux)
local ts = ffi.new('struct gam_timespec')

function M.clock(kind)
  local id = CLOCKS[kind or 'monotonic']
  if not id then
    error(string.format("gam.clock: unknown clock '%s' (known: monotonic, cpu)", tostring(kind)), 2)
  end
  ffi.C.gam_libc_clock_gettime(id, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

function M.isatty(fd)
  return ffi.C.gam_libc_isatty(fd or 1) == 1
end

local EEXIST = 17
function M.mkdir_p(dir)
  local i = 0
  repeat
    i = dir:find('/', i + 1, true) or #dir + 1
    local prefix = dir:sub(1, i - 1)
    if prefix ~= '' and prefix ~= '.' and ffi.C.gam_libc_mkdir(prefix, 493) ~= 0 and ffi.errno() ~= EEXIST then
      return nil, string.format('cannot make %s: %s', prefix, ffi.string(ffi.C.gam_libc_strerror(ffi.errno())))
    end
  until i > #dir
  return true
end

return M
