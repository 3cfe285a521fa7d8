-- Golden optimiser cases: runs every *.lua case of a folder (format in
-- ../shared/reference/README.md) and compares gamlua, step by step, with the
-- float64 PyTorch reference: pass-0 loss, pass-0 prediction, and every
-- parameter and BatchNorm buffer after each step, as max|ours − ref| / max|ref|
-- per tensor (tolerance 1e-4, or $GAM_REFERENCE_TOL, or the case's own
-- `tolerance` field when it is larger: GAM's original variant, whose
-- Hessian-vector products are finite differences, is held to 1e-3).
--
--   gamlua tests/reference_harness.lua [--device cpu|cuda] [folder]
--          (folder: default ../shared/reference, or $GAM_REFERENCE_DIR)
-- --device cuda runs every case on the GPU (model, data, optimiser; the
-- comparison reads the results back), against the same float64 reference.
-- Prints one line per case, then "N passed, N failed"; exits 1 on any failure.
local ffi = require 'ffi'
local gam = require 'gam'
local nn, optim, F = gam.nn, gam.optim, gam.F

local device, dir = 'cpu', nil
do
  local i = 1
  while arg and arg[i] do
    if arg[i] == '--device' then
      device = arg[i + 1]
      i = i + 2
    else
      dir = dir or arg[i]
      i = i + 1
    end
  end
end
dir = dir or os.getenv('GAM_REFERENCE_DIR') or '../shared/reference'
local TOL = tonumber(os.getenv('GAM_REFERENCE_TOL') or '') or 1e-4
if device ~= 'cpu' and device ~= 'cuda' then
  print(string.format("--device must be cpu or cuda, got %s", tostring(device)))
  print('0 passed, 1 failed')
  os.exit(1)
end
if device == 'cuda' and not gam.cuda_available() then
  print('--device cuda: no CUDA device is available' .. (gam.cuda_built() and '' or ' (libgam was built without CUDA)'))
  print('0 passed, 1 failed')
  os.exit(1)
end

-- ---- validation of a case: errors name the field -----------------------------------
local Malformed = {}
local function bad(path, fmt, ...)
  error(setmetatable({msg = path .. ': ' .. string.format(fmt, ...)}, Malformed), 0)
end

local function want_table(v, path)
  if type(v) ~= 'table' then bad(path, 'expected a table, got %s', type(v)) end
  return v
end

local function want_number(v, path)
  if type(v) ~= 'number' or v ~= v then bad(path, 'expected a number, got %s', tostring(v)) end
  return v
end

local function want_string(v, path)
  if type(v) ~= 'string' then bad(path, 'expected a string, got %s', tostring(v)) end
  return v
end

-- {shape = {...}, data = {...}} with #data = prod(shape)
local function want_array(v, path, int)
  want_table(v, path)
  local shape = want_table(v.shape, path .. '.shape')
  local n = 1
  for i, s in ipairs(shape) do
    if type(s) ~= 'number' or s < 0 or s ~= math.floor(s) then
      bad(path .. '.shape', 'dim %d must be a size, got %s', i, tostring(s))
    end
    n = n * s
  end
  local data = want_table(v.data, path .. '.data')
  if #data ~= n then
    bad(path .. '.data', 'has %d values, shape {%s} needs %d', #data, table.concat(shape, ', '), n)
  end
  for i = 1, n do
    local x = data[i]
    if type(x) ~= 'number' or (int and x ~= math.floor(x)) then
      bad(path .. '.data', 'value %d is %s, expected %s', i, tostring(x), int and 'an integer' or 'a number')
    end
  end
  return v
end

local function tensor_of(a, dtype)
  local n = #a.data
  local buf = ffi.new(dtype == 'int64' and 'int64_t[?]' or 'float[?]', math.max(n, 1))
  for i = 1, n do buf[i - 1] = a.data[i] end
  return gam.from_buffer(buf, a.shape, dtype or 'float32')
end

-- ---- the network -------------------------------------------------------------------
local LAYERS = {Linear = true, Conv2d = true, BatchNorm2d = true, ReLU = true, MaxPool2d = true,
                AvgPool2d = true, Flatten = true, Identity = true, AdaptiveAvgPool2d = true}

local function build(layers)
  want_table(layers, 'layers')
  if #layers == 0 then bad('layers', 'is empty') end
  local mods = {}
  for i, spec in ipairs(layers) do
    local path = string.format('layers[%d]', i)
    want_table(spec, path)
    local name = want_string(spec[1], path .. '[1]')
    if not LAYERS[name] then bad(path, "unknown layer '%s'", name) end
    local pos, opts = {}, nil
    for j = 2, #spec do pos[#pos + 1] = spec[j] end
    for k, v in pairs(spec) do
      if type(k) == 'string' then
        opts = opts or {}
        opts[k] = v
      end
    end
    if opts then pos[#pos + 1] = opts end
    local ok, m = pcall(nn[name], unpack(pos, 1, #pos))
    if not ok then bad(path, 'nn.%s: %s', name, tostring(m)) end
    mods[i] = m
  end
  return nn.Sequential(mods)
end

local function make_base(b, params)
  want_table(b, 'base')
  local name = want_string(b.name, 'base.name')
  if name == 'sgd' then
    return optim.SGD{params = params, lr = want_number(b.lr, 'base.lr'), momentum = b.momentum or 0,
                     weight_decay = b.weight_decay or 0, nesterov = b.nesterov or false,
                     dampening = b.dampening or 0}
  elseif name == 'adamw' or name == 'adam' then
    local cls = name == 'adamw' and optim.AdamW or optim.Adam
    return cls{params = params, lr = want_number(b.lr, 'base.lr'), betas = b.betas, eps = b.eps,
               weight_decay = b.weight_decay}
  end
  bad('base.name', "unknown base optimiser '%s' (sgd, adam or adamw)", name)
end

local function make_opt(case, base, model)
  local kind = want_string(case.optimizer, 'optimizer')
  local h = want_table(case.hyper, 'hyper')
  local adaptive = case.adaptive or false
  if kind == 'sam' then
    return optim.SAM{base = base, model = model, rho = want_number(h.rho, 'hyper.rho'), adaptive = adaptive}
  elseif kind == 'gsam' then
    return optim.GSAM{base = base, model = model, rho = want_number(h.rho, 'hyper.rho'),
                      alpha = want_number(h.alpha, 'hyper.alpha'), adaptive = adaptive}
  elseif kind == 'gam' and h.variant == 'original' then
    return optim.GAM{base = base, model = model, variant = 'original', alpha = want_number(h.alpha, 'hyper.alpha'),
                     grad_norm_rho = want_number(h.grad_norm_rho, 'hyper.grad_norm_rho')}
  elseif kind == 'gam' then
    return optim.GAM{base = base, model = model, grad_rho = want_number(h.grad_rho, 'hyper.grad_rho'),
                     grad_norm_rho = want_number(h.grad_norm_rho, 'hyper.grad_norm_rho'),
                     alpha = want_number(h.alpha, 'hyper.alpha'), beta = want_number(h.beta, 'hyper.beta'),
                     gamma = want_number(h.gamma, 'hyper.gamma'), adaptive = adaptive, mode = h.mode}
  end
  bad('optimizer', "unknown optimiser '%s' (gam, sam or gsam)", kind)
end

-- max|a − ref| / max|ref| (absolute when ref is all zeros)
local function rel_err(ours, ref)
  local a = ours:tolist()
  if #a ~= #ref.data then return math.huge end
  local num, den = 0, 0
  for i = 1, #a do
    local d = math.abs(a[i] - ref.data[i])
    if d ~= d then d = math.huge end
    if d > num then num = d end
    local r = math.abs(ref.data[i])
    if r > den then den = r end
  end
  return den > 0 and num / den or num
end

-- ---- one case -----------------------------------------------------------------------
local function run_case(case)
  want_table(case, 'the file')
  local name = want_string(case.name, 'name')
  local model = build(case.layers)
  model:train()
  -- initial parameters and buffers, by name
  local init = want_table(case.initial, 'initial')
  local sd = {}
  for k, v in pairs(init) do
    if type(k) ~= 'string' then bad('initial', 'keys must be names, found %s', tostring(k)) end
    sd[k] = tensor_of(want_array(v, string.format("initial['%s']", k)))
  end
  local ok, err = pcall(model.load_state_dict, model, sd)
  if not ok then bad('initial', '%s', tostring(err)) end
  if device ~= 'cpu' then model:to(device) end
  local base = make_base(case.base, model:parameters())
  local opt = make_opt(case, base, model)
  local s = want_number(case.label_smoothing or 0, 'label_smoothing')
  local function loss_fn(pred, y) return F.smooth_cross_entropy(pred, y, s):mean() end
  -- what we compare by name
  local named = {}
  for _, e in ipairs(model:named_parameters()) do named[e.name] = e.tensor end
  for _, e in ipairs(model:named_buffers()) do named[e.name] = e.tensor end

  local steps = want_table(case.steps, 'steps')
  if #steps == 0 then bad('steps', 'is empty') end
  -- validate every step before running any
  for i, st in ipairs(steps) do
    local p = string.format('steps[%d]', i)
    want_table(st, p)
    want_array(st.input, p .. '.input')
    want_array(st.target, p .. '.target', true)
    want_number(st.loss, p .. '.loss')
    want_array(st.prediction, p .. '.prediction')
    want_table(st.after, p .. '.after')
    local count = 0
    for k, v in pairs(st.after) do
      if not named[k] then bad(p .. '.after', "'%s' is not a parameter or buffer of the network", tostring(k)) end
      want_array(v, string.format("%s.after['%s']", p, k))
      count = count + 1
    end
    if count == 0 then bad(p .. '.after', 'is empty') end
  end

  local worst, where = 0, ''
  local failures = {}
  local tol = math.max(TOL, case.tolerance and want_number(case.tolerance, 'tolerance') or 0)
  local function note(step, what, e)
    if e > worst or e ~= e then worst, where = e, string.format("step %d %s", step, what) end
    if not (e <= tol) then failures[#failures + 1] = string.format('step %d %s: %.3g', step, what, e) end
  end
  for i, st in ipairs(steps) do
    gam.scope(function()
      local x = tensor_of(st.input):to(device)
      local y = tensor_of(st.target, 'int64'):to(device)
      opt:set_closure(loss_fn, x, y)
      local pred, loss = opt:step()
      note(i, 'loss', math.abs(loss - st.loss) / math.max(math.abs(st.loss), 1e-30))
      note(i, 'prediction', rel_err(pred, st.prediction))
      local names = {}
      for k in pairs(st.after) do names[#names + 1] = k end
      table.sort(names)
      for _, k in ipairs(names) do note(i, "'" .. k .. "'", rel_err(named[k], st.after[k])) end
    end)
  end
  return name, worst, where, failures, #steps
end

-- ---- the folder ---------------------------------------------------------------------
local function list_cases(folder)
  local p = io.popen('ls -1 "' .. folder:gsub('"', '\\"') .. '" 2>/dev/null')
  local files = {}
  if p then
    for line in p:lines() do
      if line:match('%.lua$') then files[#files + 1] = folder .. '/' .. line end
    end
    p:close()
  end
  table.sort(files)
  return files
end

local files = list_cases(dir)
if #files == 0 then
  print(string.format('no *.lua cases in %s', dir))
  print('0 passed, 1 failed')
  os.exit(1)
end

local passed, failed = 0, 0
for _, file in ipairs(files) do
  local short = file:match('([^/]+)$')
  local chunk, lerr = loadfile(file)
  local line
  if not chunk then
    line = string.format('FAIL %s: cannot load: %s', short, lerr)
  else
    setfenv(chunk, {})        -- a case is data: it sees no globals
    local ok, case = pcall(chunk)
    if not ok then
      line = string.format('FAIL %s: cannot load: %s', short, tostring(case))
    else
      local ok2, name, worst, where, failures, nsteps = pcall(run_case, case)
      if not ok2 then
        local e = name
        if getmetatable(e) == Malformed then
          line = string.format('FAIL %s: malformed case: %s', short, e.msg)
        else
          line = string.format('FAIL %s: error: %s', short, tostring(e))
        end
      elseif #failures > 0 then
        line = string.format('FAIL %s (%s): %d comparisons over %.0e: %s', short, name, #failures, TOL,
                             table.concat(failures, '; ', 1, math.min(#failures, 6)))
      else
        line = string.format('PASS %s (%s): %d steps, worst relative error %.2e (%s)%s', short, name, nsteps,
                             worst, where, device ~= 'cpu' and ' on ' .. device or '')
      end
    end
  end
  if line:sub(1, 4) == 'PASS' then passed = passed + 1 else failed = failed + 1 end
  print(line)
  io.stdout:flush()
end

print(string.format('%d passed, %d failed', passed, failed))
os.exit(failed == 0 and 0 or 1)
