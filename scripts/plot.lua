-- plot.lua — pictures of training runs and sweeps, drawn by gnuplot (PNG).
--
--   gamlua scripts/plot.lua curves RUN [RUN ...] [--out curves.png] [--labels a,b] [--title T]
--       loss (left) and accuracy (right) per epoch of each run, overlaid: train
--       solid, test dashed, validation dotted. RUN is a train_cifar.lua output
--       folder or its metrics.csv. Default --out: <first RUN folder>/curves.png.
--   gamlua scripts/plot.lua bars SWEEP.csv [--out bars.png] [--metric test_acc[,trace,...]] [--by config]
--       mean ± standard deviation over the finished runs of each configuration
--       (or of each value of the column --by) of a sweep.csv of scripts/sweep.lua;
--       several metrics: a panel for each, side by side. Accuracies are shown in
--       percent. Default --out: beside the CSV, bars_<metric>[-<metric>...].png.
--
-- Prints the path of the PNG it wrote. Needs gnuplot (Debian: gnuplot-nox).
local SCRIPT = debug.getinfo(1, 'S').source:sub(2)
local HERE = SCRIPT:match('^(.*[/\\])') or './'
local U = dofile(HERE .. 'study_util.lua')
local argparse = require 'argparse'
local q = U.shell_quote

local function fail(msg) io.stderr:write('plot: ', tostring(msg), '\n'); os.exit(2) end

local parser = argparse('plot.lua', 'PNG pictures of train_cifar.lua runs and sweep.lua sweeps (gnuplot)')
parser:command_target('command')
local curves = parser:command('curves', 'loss and accuracy per epoch of runs, overlaid')
curves:argument('runs', 'run folders or their metrics.csv'):args('+')
curves:option('--out', 'PNG file (default: <first run>/curves.png)')
curves:option('--labels', 'comma list of names of the runs (default: their folder names)')
curves:option('--title', 'title of the picture')
local bars = parser:command('bars', 'a sweep: mean ± std per configuration')
bars:argument('csv', 'sweep.csv of scripts/sweep.lua')
bars:option('--out', 'PNG file (default: bars_<metric>.png beside the CSV)')
bars:option('--metric', 'column to show; a comma list draws a panel for each, side by side', 'test_acc')
bars:option('--by', 'column that names the groups', 'config')
bars:option('--title', 'title of the picture')
local o = parser:parse()
if o.command == 'bars' then
  o.metrics = {}
  for m in o.metric:gmatch('[^,]+') do o.metrics[#o.metrics + 1] = m end
  if #o.metrics == 0 then fail('--metric names no column') end
end

local function dirname(p) return p:match('^(.*)/[^/]*$') or '.' end
local function basename(p) return p:match('([^/]+)/*$') or p end

-- ---- gnuplot -----------------------------------------------------------------------------------
local function gnuplot(script, out)
  if os.execute('command -v gnuplot >/dev/null 2>&1') ~= 0 then
    fail('gnuplot was not found: install it (Debian package gnuplot-nox; `make deps`)')
  end
  local tmp = os.tmpname()
  local f = assert(io.open(tmp, 'w'))
  f:write(script)
  f:close()
  os.remove(out .. '.tmp.png')
  local p = io.popen('gnuplot ' .. q(tmp) .. ' 2>&1; echo "__exit=$?"')
  local msg = p:read('*a')
  p:close()
  os.remove(tmp)
  local code = tonumber(msg:match('__exit=(%d+)%s*$'))
  msg = msg:gsub('__exit=%d+%s*$', '')
  if code ~= 0 or not U.file_exists(out .. '.tmp.png') then fail('gnuplot failed: ' .. msg) end
  local ok, err = os.rename(out .. '.tmp.png', out)
  if not ok then fail('cannot write ' .. out .. ': ' .. tostring(err)) end
end

-- a gnuplot string literal
local function gq(s) return '"' .. tostring(s):gsub('\\', '\\\\'):gsub('"', '\\"') .. '"' end

local function write_dat(path, lines)
  local f = assert(io.open(path, 'w'))
  f:write(table.concat(lines, '\n'), '\n')
  f:close()
end

-- ---- curves --------------------------------------------------------------------------------------
local function plot_curves()
  local runs = {}
  for k, r in ipairs(o.runs) do
    local csv = r:match('%.csv$') and r or (r:gsub('/+$', '') .. '/metrics.csv')
    local ok, header, rows = pcall(U.read_csv, csv)
    if not ok then fail(header) end
    if #rows == 0 then fail(csv .. ' has no epoch yet') end
    local has = {}
    for _, h in ipairs(header) do has[h] = true end
    for _, need in ipairs {'epoch', 'train_loss', 'train_acc', 'test_loss', 'test_acc'} do
      if not has[need] then fail(csv .. ': no column ' .. need .. ' (is it a metrics.csv of train_cifar.lua?)') end
    end
    runs[k] = {csv = csv, rows = rows, label = basename(r:match('%.csv$') and dirname(r) or r),
               val = has.val_acc and rows[1].val_acc ~= nil and rows[1].val_acc ~= ''}
  end
  if o.labels then
    local labels = {}
    for l in (o.labels .. ','):gmatch('([^,]*),') do labels[#labels + 1] = l end
    if #labels ~= #runs then fail(string.format('--labels has %d names for %d runs', #labels, #runs)) end
    for k, r in ipairs(runs) do r.label = labels[k] end
  end
  local out = o.out or (dirname(runs[1].csv) .. '/curves.png')
  local tmpdir = os.tmpname()
  os.remove(tmpdir)
  os.execute('mkdir -p ' .. q(tmpdir))
  for k, r in ipairs(runs) do
    local lines = {'# epoch train_loss test_loss val_loss train_acc test_acc val_acc'}
    for _, row in ipairs(r.rows) do
      local function v(name, scale)
        local x = tonumber(row[name])
        return x and string.format('%.6g', x * (scale or 1)) or 'NaN'
      end
      lines[#lines + 1] = table.concat({v('epoch'), v('train_loss'), v('test_loss'), v('val_loss'),
                                        v('train_acc', 100), v('test_acc', 100), v('val_acc', 100)}, ' ')
    end
    r.dat = tmpdir .. '/run' .. k .. '.dat'
    write_dat(r.dat, lines)
  end
  local function panel(title, ylabel, cols)
    local parts = {}
    for k, r in ipairs(runs) do
      local what = {{cols[1], 'train', 1}, {cols[2], 'test', 2}}
      if r.val then what[3] = {cols[3], 'val', 3} end
      for _, w in ipairs(what) do
        parts[#parts + 1] = string.format('%s using 1:%d with linespoints lc %d dt %d pt 7 ps 0.6 title %s',
                                          gq(r.dat), w[1], k, w[3], gq(r.label .. ' ' .. w[2]))
      end
    end
    return string.format('set title %s\nset ylabel %s\nplot %s\n', gq(title), gq(ylabel),
                         table.concat(parts, ', \\\n  '))
  end
  local script = table.concat {
    'set terminal pngcairo size 1400,560 font ",10" noenhanced\n',
    'set output ', gq(out .. '.tmp.png'), '\n',
    'set datafile missing "NaN"\nset grid\nset key outside bottom center horizontal maxrows 3\n',
    'set xlabel "epoch"\nset xtics 1\n',
    'set multiplot layout 1,2', o.title and (' title ' .. gq(o.title)) or '', '\n',
    panel('loss', 'loss', {2, 3, 4}),
    panel('accuracy', 'accuracy %', {5, 6, 7}),
    'unset multiplot\n',
  }
  gnuplot(script, out)
  os.execute('rm -rf ' .. q(tmpdir))
  print('wrote ' .. out)
end

-- ---- bars ----------------------------------------------------------------------------------------
-- one panel of bars: the mean ± std of metric per group of the rows; returns its gnuplot
-- commands and the data file they read
local function bars_panel(rows, metric)
  local scale = metric:match('acc') and 100 or 1
  local groups, order = {}, {}
  for _, r in ipairs(rows) do
    local v = tonumber(r[metric])
    if v and (r.status == nil or r.status == 'done') then
      local key = r[o.by] ~= '' and r[o.by] or '(none)'
      if not groups[key] then groups[key] = {}; order[#order + 1] = key end
      table.insert(groups[key], v * scale)
    end
  end
  if #order == 0 then fail(o.csv .. ': no finished run has a value of ' .. metric) end
  local lines, lo, hi = {'# index label mean std n'}, math.huge, -math.huge
  for k, key in ipairs(order) do
    local m, sd = U.mean_std(groups[key])
    lo, hi = math.min(lo, m - sd), math.max(hi, m + sd)
    lines[#lines + 1] = string.format('%d %s %.6g %.6g %d', k, gq(key), m, sd, #groups[key])
  end
  local tmp = os.tmpname()
  write_dat(tmp, lines)
  -- accuracies sit in a narrow band: start the axis below the lowest bar, not at 0
  local span = math.max(hi - lo, math.abs(hi) * 0.01, 1e-9)
  local ymin = (scale == 100 or lo > 0) and math.max(0, lo - 0.5 * span) or lo - 0.5 * span
  local title = o.title and #o.metrics == 1 and o.title or (metric .. (scale == 100 and ' %' or '') .. ': mean ± std')
  return table.concat {
    'set title ', gq(title), '\n',
    'set xrange [0.4:', tostring(#order + 0.6), ']\n',
    string.format('set yrange [%.6g:%.6g]\n', ymin, hi + 0.25 * span),
    'set ylabel ', gq(metric .. (scale == 100 and ' (%)' or '')), '\n',
    'plot ', gq(tmp), ' using 1:3:4:xtic(2) with boxerrorbars lc rgb "#4472c4", ',
    gq(tmp), ' using 1:($3+$4):(sprintf("%.4g±%.2g (n=%d)", $3, $4, $5)) with labels offset 0,1 font ",9"\n',
  }, tmp, #order
end

local function plot_bars()
  local ok, header, rows = pcall(U.read_csv, o.csv)
  if not ok then fail(header) end
  local has = {}
  for _, h in ipairs(header) do has[h] = true end
  for _, m in ipairs(o.metrics) do
    if not has[m] then
      fail(string.format("%s has no column '%s' (columns: %s)", o.csv, m, table.concat(header, ', ')))
    end
  end
  if not has[o.by] then fail(string.format("%s has no column '%s' to group by", o.csv, o.by)) end
  local panels, tmps, width = {}, {}, 0
  for k, m in ipairs(o.metrics) do
    local cmds, tmp, n = bars_panel(rows, m)
    panels[k], tmps[k], width = cmds, tmp, math.max(width, math.max(640, 140 * n))
  end
  local n = #o.metrics
  local out = o.out or (dirname(o.csv) .. '/bars_' .. table.concat(o.metrics, '-') .. '.png')
  local script = table.concat {
    'set terminal pngcairo size ', tostring(n == 1 and width or 420 * n), ',480 font ",10" noenhanced\n',
    'set output ', gq(out .. '.tmp.png'), '\n',
    'set style fill solid 0.5 border -1\nset boxwidth 0.6\nset grid ytics\nunset key\nset xtics rotate by -20\n',
    n > 1 and string.format('set multiplot layout 1,%d%s\n', n, o.title and ' title ' .. gq(o.title) or '') or '',
    table.concat(panels),
    n > 1 and 'unset multiplot\n' or '',
  }
  gnuplot(script, out)
  for _, tmp in ipairs(tmps) do os.remove(tmp) end
  print('wrote ' .. out)
end

if o.command == 'curves' then plot_curves() else plot_bars() end
