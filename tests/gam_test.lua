-- tests/gam_test.lua — the library with engine/gam_test.h's test-only entry
-- points declared too (the host-scalar forms of the optimiser passes):
--
--   local C = dofile(here .. '/gam_test.lua')
--
-- The declarations are read from the header itself (its GAM_TEST_FFI region),
-- once per process, so the header and the tests cannot drift apart.
local ffi = require 'ffi'
local C = require 'gam.lib'

local registry = debug.getregistry()
if not registry['gam.test'] then
  local here = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.'
  local path = here .. '/../engine/gam_test.h'
  local f = assert(io.open(path, 'rb'), 'gam_test.lua: cannot read ' .. path)
  local src = f:read('*a')
  f:close()
  local region = src:match('/%* GAM_TEST_FFI_BEGIN %*/(.-)/%* GAM_TEST_FFI_END %*/')
  assert(region, 'gam_test.lua: no GAM_TEST_FFI region in ' .. path)
  ffi.cdef(region)
  registry['gam.test'] = true
end
return C
