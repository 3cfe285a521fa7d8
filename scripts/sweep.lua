-- sweep.lua — train_cifar.lua over a grid of flags, J runs at a time, resumable.
--
--   gamlua scripts/sweep.lua --out docs/study/seeds --jobs 2 -- \
--          --dataset FashionMNIST --epochs 3 --opt sgd,sam,gam --seed 0-4 --grad-norm-rho 0.1,0.2
--
-- Every flag after `--` (or any flag that is not one of the sweep's own) is a
-- train_cifar.lua flag; its value may be a comma list (sgd,sam,gam), a range
-- of whole numbers (0-4) or both (0-2,7). Every combination is one run, in
-- its own folder <out>/<flags that vary>/ (log.txt, metrics.csv,
-- checkpoint.gam), run as a separate process, --jobs at a time, the cores
-- divided between them (each job is held to its own cores with taskset and
-- gets --threads cores/jobs unless the grid sets --threads).
--
-- Resumable: run the same command again. A finished run is skipped; one that
-- was interrupted continues from its checkpoint (--resume); a failed one is
-- reported and skipped (--retry-failed runs it again from the start). To stop
-- a sweep: Ctrl-C, or create the file <out>/stop (from another shell, or a
-- sweep started in the background); it stops its runs and exits.
-- With --flatness, each finished run's model is measured by
--   gamlua scripts/flatness.lua <run>/checkpoint.gam --csv <run>/flatness.csv
-- (λmax and trace of the Hessian, first-order flatness).
--
-- <out>/sweep.csv gets one row per run: its flags, status, epochs, final test
-- and validation accuracy (fractions), training seconds (in all, and the
-- median epoch's: seconds_per_epoch), and the flatness
-- figures; <out>/progress.txt says what is done and what runs. At the end a
-- table of mean ± standard deviation per configuration (the flags other than
-- --seed) is printed.
local SCRIPT = debug.getinfo(1, 'S').source:sub(2)
local HERE = SCRIPT:match('^(.*[/\\])') or './'
local U = dofile(HERE .. 'study_util.lua')
local argparse = require 'argparse'
local ffi = require 'ffi'
local q = U.shell_quote

local function fail(msg) io.stderr:write('sweep: ', msg, '\n'); os.exit(2) end

-- ---- arguments: the sweep's own flags, then the grid --------------------------------------------
local OWN = {out = true, jobs = true, cores = true, flatness = false, ['flatness-args'] = true, ['dry-run'] = false,
             ['retry-failed'] = false, script = true, help = false, h = false}
local own, rest = {}, {}
do
  local i, argv = 1, arg or {}
  while i <= #argv do
    local a = argv[i]
    if a == '--' then
      for k = i + 1, #argv do rest[#rest + 1] = argv[k] end
      break
    end
    local name = a:match('^%-%-?([%w%-]+)$') or a:match('^%-%-([%w%-]+)=')
    if name and OWN[name] ~= nil then
      own[#own + 1] = a
      if OWN[name] and not a:find('=', 1, true) and argv[i + 1] then
        i = i + 1
        own[#own + 1] = argv[i]
      end
    else
      rest[#rest + 1] = a
    end
    i = i + 1
  end
end

local parser = argparse('sweep.lua', 'train_cifar.lua over a grid of flags, --jobs runs at a time, resumable. '
                        .. 'Every other flag is a train_cifar.lua flag: --opt sgd,gam --seed 0-4 ...')
parser:option('--out', 'folder of the sweep (one sub-folder per run, sweep.csv)'):count(1)
parser:option('--jobs', 'runs at a time', '1'):convert(tonumber)
parser:option('--cores', 'cores to divide between the jobs (default: all this process may use)'):convert(tonumber)
parser:flag('--flatness', 'measure each finished model with scripts/flatness.lua')
parser:option('--flatness-args', 'more arguments for scripts/flatness.lua', '')
parser:flag('--dry-run', 'print the runs and their commands, run nothing')
parser:flag('--retry-failed', 'run failed runs again from the start')
parser:option('--script', 'the training program', HERE .. 'train_cifar.lua')
local o = parser:parse(own)
if not o.jobs or o.jobs < 1 or o.jobs % 1 ~= 0 then fail('--jobs must be a whole number >= 1') end
if o.cores and (o.cores < 1 or o.cores % 1 ~= 0) then fail('--cores must be a whole number >= 1') end

local ok, grid = pcall(U.parse_grid, rest)
if not ok then fail(grid) end
for _, g in ipairs(grid) do
  if g.name == 'out' or g.name == 'resume' then fail('--' .. g.name .. ' is set by the sweep for each run') end
end
local points = U.expand_grid(grid)

-- ---- the machine ----------------------------------------------------------------------------------
local function shell_read(cmd)
  local p = io.popen(cmd)
  local s = p:read('*a') or ''
  p:close()
  return s
end

pcall(ffi.cdef, 'int getpid(void);')
local GAMLUA = shell_read('readlink -f /proc/' .. ffi.C.getpid() .. '/exe'):gsub('%s+$', '')
if not GAMLUA:match('gamlua$') then GAMLUA = 'gamlua' end

-- the cores a child may use (the host unpins itself while it starts children)
local CPUS = {}
do
  local list = shell_read("grep Cpus_allowed_list /proc/self/status 2>/dev/null"):match(':%s*(%S+)') or ''
  for a, b in list:gmatch('(%d+)%-?(%d*)') do
    for c = tonumber(a), tonumber(b ~= '' and b or a) do CPUS[#CPUS + 1] = c end
  end
  if #CPUS == 0 then
    local n = tonumber(shell_read('nproc')) or 1
    for c = 0, n - 1 do CPUS[#CPUS + 1] = c end
  end
end
local cores = math.min(o.cores or #CPUS, #CPUS)
local per_job = math.max(1, math.floor(cores / o.jobs))
local HAVE_TASKSET = os.execute('command -v taskset >/dev/null 2>&1') == 0
local grid_threads = false
for _, g in ipairs(grid) do if g.name == 'threads' then grid_threads = true end end

-- cores of job slot k (1-based): a block of per_job cores, wrapping when jobs x per_job > cores
local function slot_cpus(k)
  local t = {}
  for j = 0, per_job - 1 do t[#t + 1] = CPUS[((k - 1) * per_job + j) % cores + 1] end
  return table.concat(t, ',')
end

-- ---- runs -----------------------------------------------------------------------------------------
local FLATNESS = HERE .. 'flatness.lua'
local want_flatness = o.flatness
if want_flatness and not U.file_exists(FLATNESS) then
  print('sweep: ' .. FLATNESS .. ' does not exist (yet): --flatness is skipped, λmax/trace/flatness stay empty')
  want_flatness = false
end

os.execute('mkdir -p ' .. q(o.out))
local runs, names = {}, {}
for _, p in ipairs(points) do
  local name = U.point_name(p, grid)
  if names[name] then fail('two runs would share the folder ' .. name) end
  names[name] = true
  runs[#runs + 1] = {point = p, name = name, dir = o.out .. '/' .. name, config = U.point_config(p, grid)}
end

local function status(run)
  local rc = U.read_file(run.dir .. '/rc')
  if rc then
    rc = tonumber(rc)
    return rc == 0 and 'done' or ('failed (exit ' .. tostring(rc) .. ')')
  end
  if U.file_exists(run.dir .. '/checkpoint.gam') then return 'interrupted' end
  return 'pending'
end

local function train_command(run)
  local args = U.point_args(run.point)
  if not grid_threads then args[#args + 1] = '--threads'; args[#args + 1] = tostring(per_job) end
  args[#args + 1] = '--out'; args[#args + 1] = run.dir
  args[#args + 1] = '--progress'; args[#args + 1] = 'lines'
  if status(run) == 'interrupted' then args[#args + 1] = '--resume' end
  local quoted = {}
  for k, a in ipairs(args) do quoted[k] = q(a) end
  return q(GAMLUA) .. ' ' .. q(o.script) .. ' ' .. table.concat(quoted, ' ')
end

local function flatness_command(run)
  return q(GAMLUA) .. ' ' .. q(FLATNESS) .. ' ' .. q(run.dir .. '/checkpoint.gam') .. ' --threads ' .. per_job
         .. ' --csv ' .. q(run.dir .. '/flatness.csv') .. (o.flatness_args ~= '' and ' ' .. o.flatness_args or '')
end

-- ---- results --------------------------------------------------------------------------------------
local function num(s) return tonumber(s) end

local function results(run)
  local r = {run = run.name, config = run.config, status = status(run)}
  for _, e in ipairs(run.point) do r[e[1]] = e[2] == true and 'on' or e[2] end
  local okm, _, rows = pcall(U.read_csv, run.dir .. '/metrics.csv')
  if okm and #rows > 0 then
    local last, secs, each = rows[#rows], 0, {}
    for _, row in ipairs(rows) do
      secs = secs + (num(row.seconds) or 0)
      each[#each + 1] = num(row.seconds)
    end
    r.epochs_done, r.test_acc, r.val_acc, r.seconds = num(last.epoch), num(last.test_acc), num(last.val_acc), secs
    r.seconds_per_epoch = U.median(each)   -- the median: an epoch slowed by a pause or a restart does not move it
  end
  local okf, header, frows = pcall(U.read_csv, run.dir .. '/flatness.csv')
  if okf and #frows > 0 then
    local f = frows[#frows]
    local function pick(...)
      for _, pat in ipairs {...} do
        for _, h in ipairs(header) do if h:lower():match(pat) then return num(f[h]) end end
      end
    end
    r.lambda_max = pick('^lambda_?max', 'lmax', 'lambda')
    r.trace = pick('^trace', 'trace')
    r.flatness = pick('^r1$', 'first_order', '^flatness')   -- flatness.lua's r1: first-order flatness
  end
  return r
end

local function write_sweep_csv()
  local header = {'run', 'config'}
  for _, g in ipairs(grid) do header[#header + 1] = g.name end
  for _, k in ipairs {'status', 'epochs_done', 'test_acc', 'val_acc', 'seconds', 'seconds_per_epoch', 'lambda_max',
                      'trace', 'flatness'} do header[#header + 1] = k end
  local rows = {}
  for _, run in ipairs(runs) do rows[#rows + 1] = results(run) end
  U.write_csv(o.out .. '/sweep.csv', header, rows)
  return rows
end

local function summary(rows)
  local groups, order = {}, {}
  for _, r in ipairs(rows) do
    if r.status == 'done' then
      local g = groups[r.config]
      if not g then g = {}; groups[r.config] = g; order[#order + 1] = r.config end
      g[#g + 1] = r
    end
  end
  local cols = {{'test_acc', 'test acc %', 100}, {'val_acc', 'val acc %', 100}, {'seconds_per_epoch', 's/epoch', 1},
                {'lambda_max', 'λmax', 1}, {'trace', 'trace', 1}, {'flatness', 'flatness', 1}}
  local shown = {}
  for _, c in ipairs(cols) do
    for _, r in ipairs(rows) do if r.status == 'done' and r[c[1]] then shown[#shown + 1] = c; break end end
  end
  local width = 6
  for _, cfg in ipairs(order) do width = math.max(width, #cfg) end
  local line = {string.format('%-' .. width .. 's %3s', 'config', 'n')}
  for _, c in ipairs(shown) do line[#line + 1] = string.format('%20s', c[2]) end
  print(table.concat(line, ' '))
  for _, cfg in ipairs(order) do
    local g = groups[cfg]
    line = {string.format('%-' .. width .. 's %3d', cfg, #g)}
    for _, c in ipairs(shown) do
      local vals = {}
      for _, r in ipairs(g) do if r[c[1]] then vals[#vals + 1] = r[c[1]] * c[3] end end
      local m, s = U.mean_std(vals)
      line[#line + 1] = m and string.format('%20s', string.format('%.4g ± %.3g', m, s)) or string.format('%20s', '-')
    end
    print(table.concat(line, ' '))
  end
end

-- ---- the job queue ---------------------------------------------------------------------------------
local function pid_alive(pidfile)
  local pid = U.read_file(pidfile)
  pid = pid and pid:match('%d+')
  return pid and os.execute('kill -0 ' .. pid .. ' 2>/dev/null') == 0, pid
end

local queue = {}
for _, run in ipairs(runs) do
  local live, pid = pid_alive(run.dir .. '/pid')
  if live and not o.dry_run then
    fail(string.format('%s is still running (pid %s; another sweep, or one stopped uncleanly): wait for it or stop '
                       .. 'it first', run.name, pid))
  end
  local st = status(run)
  if st:match('^failed') and o.retry_failed then
    os.remove(run.dir .. '/rc'); os.remove(run.dir .. '/checkpoint.gam'); os.remove(run.dir .. '/metrics.csv')
    st = 'pending'
  end
  if st == 'pending' or st == 'interrupted' then queue[#queue + 1] = {run = run, stage = 'train'}
  elseif st == 'done' and want_flatness and not U.file_exists(run.dir .. '/flatness.rc') then
    queue[#queue + 1] = {run = run, stage = 'flatness'}
  elseif st:match('^failed') then
    print(string.format('sweep: %s %s earlier (see %s/log.txt); skipped (--retry-failed runs it again)', run.name,
                        st, run.dir))
  end
end

print(string.format('sweep: %d runs (%d to do), %d at a time, %d thread(s) each%s; %s', #runs, #queue, o.jobs, per_job,
                    HAVE_TASKSET and ' on cores ' .. (function()
                      local t = {}
                      for k = 1, o.jobs do t[k] = slot_cpus(k) end
                      return table.concat(t, ' | ')
                    end)() or '',
                    o.out .. '/sweep.csv'))
if o.dry_run then
  for _, job in ipairs(queue) do
    print(job.run.name .. ': ' .. (job.stage == 'train' and train_command(job.run) or flatness_command(job.run)))
  end
  os.exit(0)
end
U.write_file(o.out .. '/command.txt', 'gamlua scripts/sweep.lua ' .. table.concat(arg, ' ') .. '\n')

local running, slots_free = {}, {}
for k = o.jobs, 1, -1 do slots_free[#slots_free + 1] = k end

local function start(job)
  local run = job.run
  local slot = table.remove(slots_free)
  os.execute('mkdir -p ' .. q(run.dir))
  local cmd, log, rcfile
  if job.stage == 'train' then
    cmd, log, rcfile = train_command(run), run.dir .. '/log.txt', run.dir .. '/rc'
  else
    cmd, log, rcfile = flatness_command(run), run.dir .. '/flatness.log', run.dir .. '/flatness.rc'
  end
  if HAVE_TASKSET then cmd = 'taskset -c ' .. slot_cpus(slot) .. ' ' .. cmd end
  U.write_file(run.dir .. '/' .. job.stage .. '_command.txt', cmd .. '\n')
  local pidfile = run.dir .. '/pid'
  os.remove(pidfile)
  -- the wrapper records the exit status, unless the program was killed by a signal (an interruption)
  local wrapper = string.format('%s >> %s 2>&1 & echo $! > %s; wait $!; rc=$?; '
                                .. 'if [ $rc -lt 128 ]; then echo $rc > %s.tmp && mv %s.tmp %s; fi',
                                cmd, q(log), q(pidfile), q(rcfile), q(rcfile), q(rcfile))
  os.execute('sh -c ' .. q(wrapper) .. ' </dev/null >/dev/null 2>&1 &')
  job.slot, job.rcfile, job.pidfile = slot, rcfile, pidfile
  running[#running + 1] = job
  print(string.format('sweep: start %s %s (%s)', job.stage, run.name, log))
  io.stdout:flush()
end

local function alive(job)
  if not U.file_exists(job.pidfile) then return true end   -- not started yet
  return pid_alive(job.pidfile)
end

local function stop_all()
  for _, job in ipairs(running) do
    local pid = U.read_file(job.pidfile)
    if pid then os.execute('kill ' .. pid:gsub('%s', '') .. ' 2>/dev/null') end
  end
end

local function write_progress(done, total)
  local now_running = {}
  for _, job in ipairs(running) do now_running[#now_running + 1] = job.stage .. ' ' .. job.run.name end
  U.write_file(o.out .. '/progress.txt', string.format('%s: %d of %d jobs finished; running: %s\n',
                                                      os.date('!%Y-%m-%d %H:%M:%SZ'), done, total,
                                                      #now_running > 0 and table.concat(now_running, ', ') or 'none'))
end

os.remove(o.out .. '/stop')
local total, finished, t0 = #queue, 0, os.time()
write_progress(0, total)
local function interrupted()
  stop_all()
  print('\nsweep: interrupted; the runs were stopped and resume from their checkpoints next time')
  write_sweep_csv()
  os.exit(130)
end
local ok_loop, err = pcall(function()
  while #queue > 0 or #running > 0 do
    while #queue > 0 and #slots_free > 0 do start(table.remove(queue, 1)) end
    write_progress(finished, total)
    local r = os.execute('sleep 1')
    -- Ctrl-C or <out>/stop: stop the runs; a later sweep resumes them
    if r ~= 0 or U.file_exists(o.out .. '/stop') then
      os.remove(o.out .. '/stop')
      interrupted()
    end
    for k = #running, 1, -1 do
      local job = running[k]
      local rc = U.read_file(job.rcfile)
      if rc or not alive(job) then
        table.remove(running, k)
        slots_free[#slots_free + 1] = job.slot
        finished = finished + 1
        rc = rc and tonumber(rc)
        local res = results(job.run)
        local what = rc == 0 and 'done' or (rc and 'FAILED (exit ' .. rc .. ')' or 'stopped by a signal')
        print(string.format('sweep: [%d/%d, %s] %s %s %s%s%s', finished, total, os.date('!%H:%M:%S', os.time() - t0),
                            job.stage, job.run.name, what,
                            res.test_acc and string.format(', test %.2f%%', 100 * res.test_acc) or '',
                            res.val_acc and string.format(', val %.2f%%', 100 * res.val_acc) or ''))
        if job.stage == 'train' and rc == 0 and want_flatness then
          table.insert(queue, 1, {run = job.run, stage = 'flatness'})
          total = total + 1
        end
        write_sweep_csv()
        io.stdout:flush()
      end
    end
  end
end)
if not ok_loop then
  io.stderr:write('sweep: ', tostring(err), '\n')
  interrupted()
end
write_progress(finished, total)
summary(write_sweep_csv())
print('sweep: ' .. o.out .. '/sweep.csv')
