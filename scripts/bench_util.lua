-- bench_util.lua — helpers shared by the benchmark scripts (bench_layers.lua,
-- bench_step.lua), loaded relative to the script:
--   local bench = dofile(<the script's folder> .. 'bench_util.lua')
local M = {}

-- The PyTorch peer every script measures against, beside this file.
M.torch_peer = (debug.getinfo(1, 'S').source:sub(2):match('^(.*[/\\])') or './') .. 'torch_peer.py'

-- Runs the peer: `torch_peer.py <args...>` with OMP_NUM_THREADS = threads, under
-- python (default /usr/bin/python3, Debian's python3-torch). Returns its output
-- (stdout and stderr together).
function M.run_peer(threads, args, python)
  local p = io.popen(string.format('OMP_NUM_THREADS=%d %s %s %s 2>&1', threads, python or '/usr/bin/python3',
                                   M.torch_peer, table.concat(args, ' ')))
  local out = p:read('*a')
  p:close()
  return out
end

-- Median of the numbers in t (t is left unchanged): study_util's
M.median = dofile((debug.getinfo(1, 'S').source:sub(2):match('^(.*[/\\])') or './') .. 'study_util.lua').median

return M
