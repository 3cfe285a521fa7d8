-- Small helpers shared by the specs: files, temporary names, shell commands
-- and error messages.
--
--   local here = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.'
--   local T = dofile(here .. '/helpers.lua')
local assert = require 'luassert'

local T = {}

-- the folder part of a path ('.' when there is none)
function T.dirname(p) return p:match('^(.*)/[^/]*$') or '.' end

-- s quoted for the shell
-- 'LD_PRELOAD=<libasan> ' under make test-sanitize (tests/run_sanitize.sh), else '': for
-- programs that load libgam without being linked with ASan themselves (luajit, C programs)
function T.asan_preload()
  local p = os.getenv('GAM_ASAN_PRELOAD')
  return (p and p ~= '') and p .. ' ' or ''
end

function T.q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- runs a shell command; returns its output (stdout and stderr) and exit code
function T.run(cmd)
  local p = io.popen(cmd .. ' 2>&1; echo "__exit=$?"')
  local out = p:read('*a')
  p:close()
  local code = tonumber(out:match('__exit=(%d+)%s*$'))
  return (out:gsub('__exit=%d+%s*$', '')), code
end

-- the path of this very gamlua binary (the one running the specs)
function T.gamlua()
  local ffi = require 'ffi'
  pcall(ffi.cdef, 'int getpid(void);')
  local p = io.popen('readlink -f /proc/' .. ffi.C.getpid() .. '/exe')
  local exe = p and p:read('*l')
  if p then p:close() end
  if exe and exe:match('gamlua$') then return exe end
  return ((_GAMLUA and _GAMLUA.lib or ''):gsub('libgam%.so$', 'gamlua'))
end

-- a fresh temporary name (nothing there yet)
function T.tmpname()
  local name = os.tmpname()
  os.remove(name)
  return name
end

-- a fresh empty temporary folder
function T.tmpdir()
  local p = T.tmpname()
  os.execute('mkdir -p ' .. p)
  return p
end

-- the whole content of a file (an error when it cannot be opened)
function T.read(path)
  local f = assert(io.open(path, 'rb'))
  local s = f:read('*a')
  f:close()
  return s
end

function T.write(path, s)
  local f = assert(io.open(path, 'wb'))
  f:write(s)
  f:close()
end

-- the message of the error fn(...) raises (fails when it raises none)
function T.errmsg(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, 'expected an error')
  return tostring(err)
end

-- asserts that the text s contains sub (plain text, not a pattern)
function T.contains(s, sub)
  assert.is_truthy(s:find(sub, 1, true), string.format('expected %q in:\n%s', sub, s))
end

return T
