-- bench_util.lua — helpers shared by the benchmark scripts (bench_layers.lua,
-- bench_step.lua), loaded relative to the script:
--   local bench = dofile(<the script's folder> .. 'bench_util.lua')
local M = {}

-- The PyTorch peer every script measures against, beside this file.
M.torch_peer = (debug.getinfo(1, 'S').source:sub(2):match('^(.*[/\\])') or './') .. 'torch_peer.py'

-- Prints the header comment of the script at path (its --help) and exits.
function M.print_help(path)
  for line in io.lines(path) do
    if not line:match('^%-%-') then break end
    print((line:gsub('^%-%- ?', '')))
  end
  os.exit(0)
end

-- Median of the numbers in t (t is left unchanged).
function M.median(t)
  local s = {}
  for k, v in ipairs(t) do s[k] = v end
  table.sort(s)
  local n = #s
  return n % 2 == 1 and s[(n + 1) / 2] or (s[n / 2] + s[n / 2 + 1]) / 2
end

return M
