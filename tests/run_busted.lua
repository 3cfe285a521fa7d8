-- Runs every tests/*_spec.lua under busted inside gamlua, so `require 'gam'`
-- resolves to this build. Extra arguments go to busted (e.g. a spec file).
local here = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.'
-- --no-auto-insulate: the gam modules must load once per process. Busted's
-- default file insulation reloads them for every spec file, but the FFI
-- metatype of tensors keeps the first load's methods, so from the second file
-- on, operator results (x + y, x:sum()) registered in a stale scope stack and
-- escaped gam.scope.
local args = {'-o', here .. '/gam_output.lua', '--pattern=_spec%.lua$', '--no-auto-insulate'}
for i = 1, #arg do args[#args + 1] = arg[i] end
if #arg == 0 then args[#args + 1] = here end
arg = args
-- busted ends a failing run with error(nil) under Lua 5.1; turn it into exit 1
local ok, err = pcall(require('busted.runner'), {standalone = false})
if not ok then
  if err ~= nil then io.stderr:write(tostring(err), '\n') end
  os.exit(1)
end
