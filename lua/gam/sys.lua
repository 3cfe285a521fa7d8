-- gam.sys — the C library calls the package makes (declared by gam.lib):
-- clocks for timing and isatty.
--
--   gam.clock()        seconds from a monotonic clock
--   gam.clock('cpu')   seconds of CPU time of the process (all threads)
--   gam.isatty(fd)     true when the file descriptor fd is a terminal
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

return M
