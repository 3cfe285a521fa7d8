-- Runs MPI spec files (tests/dist/*_mpi.lua) under busted on every rank of an
-- MPI job: mpirun -np 2 gamlua tests/dist/run_mpi.lua tests/dist/<name>_mpi.lua
-- (tests/dist/run_mpi.sh starts it). One thread per rank.
local here = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.'
local gam = require 'gam'
gam.dist.init()
gam.set_num_threads(1)
local args = {'-o', here .. '/mpi_output.lua', '--pattern=_mpi%.lua$', '--no-auto-insulate'}
for i = 1, #arg do args[#args + 1] = arg[i] end
if #arg == 0 then args[#args + 1] = here end
arg = args
local ok, err = pcall(require('busted.runner'), {standalone = false})
if not ok then
  if err ~= nil then io.stderr:write(tostring(err), '\n') end
  os.exit(1)
end
