-- rank 1 raises while rank 0 waits in a collective: the job must end (MPI_Abort)
-- with rank 1's message instead of hanging
local gam = require 'gam'
local dist = gam.dist
dist.init()
local t = gam.ones({4})
dist.all_reduce(t)
io.stdout:write(string.format('rank %d reduced %g\n', dist.rank(), t:sum():item()))
io.stdout:flush()
if dist.rank() == 1 then error('rank 1 fails on purpose (' .. (arg[1] or 'plain') .. ')') end
dist.barrier()          -- rank 0 would wait here forever
dist.all_reduce(t)
print('rank 0 should never get here')
