-- study_util.lua — the pieces scripts/sweep.lua and scripts/plot.lua share:
-- value lists and grids of flags, CSV files, mean and standard deviation.
-- Loaded relative to the script:
--   local U = dofile(<the script's folder> .. 'study_util.lua')
local M = {}

-- ---- value lists and grids ---------------------------------------------------------------
-- 'sgd,sam,gam' -> {'sgd','sam','gam'}; '0-4' -> {'0','1','2','3','4'}; '0-2,7' ->
-- {'0','1','2','7'}; '0.1' -> {'0.1'}. Ranges are of whole numbers, low to high.
-- Raises an error naming `flag` for an empty item or a backwards range.
function M.expand_values(flag, s)
  local out = {}
  if s == '' then error(string.format('--%s: no value', flag), 0) end
  for item in (s .. ','):gmatch('([^,]*),') do
    if item == '' then error(string.format("--%s: empty item in '%s'", flag, s), 0) end
    local a, b = item:match('^(%d+)%-(%d+)$')
    if a then
      a, b = tonumber(a), tonumber(b)
      if b < a then error(string.format("--%s: range '%s' goes backwards", flag, item), 0) end
      if b - a >= 10000 then error(string.format("--%s: range '%s' is too long", flag, item), 0) end
      for v = a, b do out[#out + 1] = tostring(v) end
    else
      out[#out + 1] = item
    end
  end
  return out
end

-- Parses train flags written as `--name V1,V2 --name2 0-3 --flag --name3=V`
-- into an ordered list {{name=, values={...}} | {name=, switch=true}}. A flag
-- followed by another flag (or by nothing) is a switch. A repeated flag or a
-- stray word raises an error.
function M.parse_grid(argv)
  local grid, seen, i = {}, {}, 1
  while i <= #argv do
    local a = argv[i]
    local name, value = a:match('^%-%-([%w][%w%-]*)=(.*)$')
    if not name then name = a:match('^%-%-([%w][%w%-]*)$') end
    if not name then error(string.format("'%s' is not a flag (flags are written --name VALUES)", a), 0) end
    if seen[name] then error(string.format('--%s is given twice (write its values as one list: --%s A,B)', name,
                                           name), 0) end
    seen[name] = true
    if value == nil and argv[i + 1] ~= nil and not argv[i + 1]:match('^%-%-') then
      i = i + 1
      value = argv[i]
    end
    if value == nil then grid[#grid + 1] = {name = name, switch = true}
    else grid[#grid + 1] = {name = name, values = M.expand_values(name, value)} end
    i = i + 1
  end
  return grid
end

-- Every combination of the grid's values, the last flag varying fastest:
-- a list of points, each an ordered list {{name, value | true}, ...}.
function M.expand_grid(grid)
  local points = {{}}
  for _, g in ipairs(grid) do
    local nxt = {}
    for _, p in ipairs(points) do
      for _, v in ipairs(g.switch and {true} or g.values) do
        local q = {}
        for k, e in ipairs(p) do q[k] = e end
        q[#q + 1] = {g.name, v}
        nxt[#nxt + 1] = q
      end
    end
    points = nxt
  end
  return points
end

-- The flags of a point as train_cifar arguments.
function M.point_args(point)
  local t = {}
  for _, e in ipairs(point) do
    t[#t + 1] = '--' .. e[1]
    if e[2] ~= true then t[#t + 1] = tostring(e[2]) end
  end
  return t
end

-- A folder name for a point: the flags that vary in the grid, name-value
-- joined by '_' ('opt-gam_seed-3'); 'run' when nothing varies. Characters
-- other than letters, digits, '.', '-' and '+' become '+'.
function M.point_name(point, grid)
  local varies = {}
  for _, g in ipairs(grid) do varies[g.name] = g.values and #g.values > 1 end
  local parts = {}
  for _, e in ipairs(point) do
    if varies[e[1]] then parts[#parts + 1] = e[1] .. '-' .. tostring(e[2]):gsub('[^%w%.%-+]', '+') end
  end
  return #parts > 0 and table.concat(parts, '_') or 'run'
end

-- The configuration of a point: its flags except `without` (default 'seed'),
-- written 'opt=gam grad-rho=0.03' (only the flags that vary in the grid).
function M.point_config(point, grid, without)
  without = without or 'seed'
  local varies = {}
  for _, g in ipairs(grid) do varies[g.name] = g.values and #g.values > 1 end
  local parts = {}
  for _, e in ipairs(point) do
    if e[1] ~= without and varies[e[1]] then parts[#parts + 1] = e[1] .. '=' .. tostring(e[2]) end
  end
  return #parts > 0 and table.concat(parts, ' ') or 'all'
end

-- ---- statistics ------------------------------------------------------------------------------
-- mean and sample standard deviation (n-1; 0 for one value) of the numbers in t
function M.mean_std(t)
  local n = #t
  if n == 0 then return nil, nil end
  local s = 0
  for _, v in ipairs(t) do s = s + v end
  local mean = s / n
  if n == 1 then return mean, 0 end
  local q = 0
  for _, v in ipairs(t) do q = q + (v - mean) ^ 2 end
  return mean, math.sqrt(q / (n - 1))
end

-- median of the numbers in t (t is left unchanged; nil when empty)
function M.median(t)
  if #t == 0 then return nil end
  local s = {}
  for k, v in ipairs(t) do s[k] = v end
  table.sort(s)
  local n = #s
  return n % 2 == 1 and s[(n + 1) / 2] or (s[n / 2] + s[n / 2 + 1]) / 2
end

-- ---- CSV -----------------------------------------------------------------------------------
-- Fields never hold commas, quotes or newlines here (names are sanitised), so
-- a CSV line is the fields joined by ','.
local function split(line)
  local t = {}
  for f in (line .. ','):gmatch('([^,]*),') do t[#t + 1] = f end
  return t
end

-- Reads a CSV file with a header: returns the header (list of names) and the
-- rows (tables name -> string). Raises an error naming the file when it is
-- missing, empty, or a row has more fields than the header.
function M.read_csv(path)
  local f, err = io.open(path, 'r')
  if not f then error(string.format('cannot read %s: %s', path, tostring(err)), 0) end
  local header, rows, n = nil, {}, 0
  for line in f:lines() do
    n = n + 1
    line = line:gsub('\r$', '')
    if not header then
      header = split(line)
    elseif line ~= '' then
      local fields = split(line)
      if #fields > #header then
        f:close()
        error(string.format('%s line %d: %d fields, the header has %d', path, n, #fields, #header), 0)
      end
      local r = {}
      for k, name in ipairs(header) do r[name] = fields[k] end
      rows[#rows + 1] = r
    end
  end
  f:close()
  if not header or #header == 0 or header[1] == '' then error(path .. ': empty CSV file (no header)', 0) end
  return header, rows
end

-- Writes a CSV file atomically (a temporary file renamed over the target).
-- rows: tables name -> value; missing values are written empty.
function M.write_csv(path, header, rows)
  local tmp = path .. '.tmp'
  local f, err = io.open(tmp, 'w')
  if not f then error(string.format('cannot write %s: %s', tmp, tostring(err)), 0) end
  f:write(table.concat(header, ','), '\n')
  for _, r in ipairs(rows) do
    local fields = {}
    for k, name in ipairs(header) do
      local v = r[name]
      fields[k] = v == nil and '' or (type(v) == 'number' and string.format('%.6g', v) or tostring(v))
    end
    f:write(table.concat(fields, ','), '\n')
  end
  f:close()
  local ok, rerr = os.rename(tmp, path)
  if not ok then error(string.format('cannot rename %s to %s: %s', tmp, path, tostring(rerr)), 0) end
end

function M.file_exists(p)
  local f = io.open(p, 'rb')
  if f then f:close() end
  return f ~= nil
end

function M.read_file(p)
  local f = io.open(p, 'rb')
  if not f then return nil end
  local s = f:read('*a')
  f:close()
  return s
end

function M.write_file(p, s)
  local tmp = p .. '.tmp'
  local f = assert(io.open(tmp, 'wb'))
  f:write(s)
  f:close()
  assert(os.rename(tmp, p))
end

function M.shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- ---- the Fashion-MNIST studies (study_fmnist.lua, screen_recipe.lua) ----------------------
--- hidden_alive(gam, model, probe): hidden units of cnn_small (outputs of module 11, the ReLU
-- after Linear 3136->128) active on some image of the dataset probe, with batch statistics
function M.hidden_alive(gam, model, probe)
  local h = gam.no_grad(function()
    local x = gam.data.loader {dataset = probe, batch_size = probe:size()}()
    for k = 1, 11 do x = model:get(k)(x) end
    return x
  end)
  local rows, alive = h:totable(), 0
  for j = 1, #rows[1] do
    for r = 1, #rows do
      if rows[r][j] > 0 then alive = alive + 1; break end
    end
  end
  return alive
end

--- start(gam, train, seed, lr) -> model, flat_grad, base, loader: a fresh cnn_small from seed, its
-- SGD (momentum 0.9, weight decay 5e-4) at lr, and the loader of make train (batch 128, shuffled
-- and flipped from seed), as train_cifar.lua builds them
function M.start(gam, train, seed, lr)
  gam.manual_seed(seed)
  local model = gam.models.cnn_small {num_classes = 10, in_channels = 1}
  local _, flat_grad = model:flat_parameters()
  local base = gam.optim.SGD {params = model:parameters(), lr = lr, momentum = 0.9, weight_decay = 5e-4}
  local loader = gam.data.loader {dataset = train, batch_size = 128, shuffle = true, augment = {flip = true},
                                  seed = seed}
  return model, flat_grad, base, loader
end

--- recipe(gam, base, o, total): the learning-rate schedule of train_cifar.lua's Fashion-MNIST
-- recipe on optimiser base: a linear warm-up from 0 over o.warmup steps, then a cosine to 0 at
-- step total (per step; the t = 0 value is consumed here, so step k trains at the value of t = k),
-- and radii (o.radii: 'follow' in proportion to the lr, the reference's ProportionScheduler
-- wiring with min_value 0; 'constant': fixed). Returns radius(r) (a scheduler to hand to the
-- optimiser as a radius) and step() (to call before each training step).
function M.recipe(gam, base, o, total)
  local optim = gam.optim
  local sched = optim.CosineScheduler {T_max = total, max_value = o.lr, warmup_steps = o.warmup, optimizer = base}
  sched:step()
  local radii = {}
  local function radius(r)
    local s = optim.ProportionScheduler {scheduler = sched, max_lr = o.lr, max_value = r,
                                         min_value = o.radii == 'constant' and r or 0}
    radii[#radii + 1] = s
    return s
  end
  local function step()
    sched:step()
    for _, r in ipairs(radii) do r:step() end
  end
  return radius, step
end

--- run_steps(gam, s, loader, steps, schedule) -> the mean loss of the last 20 steps: the first
-- `steps` steps from epoch 1 of loader (into later epochs when needed), schedule() before each,
-- s as for train_step; the loader is closed after
function M.run_steps(gam, s, loader, steps, schedule)
  loader:epoch(1)
  s.model:train()
  local losses, step = {}, 0
  while step < steps do
    for x, y in loader do
      step = step + 1
      schedule()
      losses[step] = M.train_step(gam, s, x, y)
      if step >= steps then break end
    end
    if step < steps then loader:epoch(math.floor(step / loader:size()) + 1) end
  end
  loader:close()
  local tail, n = 0, math.min(20, #losses)
  for k = #losses - n + 1, #losses do tail = tail + losses[k] end
  return tail / n
end

--- train_step(gam, s, x, y): one step on batch (x, y), in a scope; returns pass 0's loss.
-- s: {opt = a SAM-family optimiser, or nil for plain s.base with s.model, s.flat_grad, s.loss_fn}
function M.train_step(gam, s, x, y)
  local loss
  gam.scope(function()
    if s.opt then
      s.opt:set_closure(s.loss_fn, x, y)
      loss = select(2, s.opt:step())
    else
      s.flat_grad:fill_(0)
      local l = s.loss_fn(s.model(x), y)
      loss = l:item()
      l:backward()
      s.base:step()
    end
  end)
  return loss
end

return M
