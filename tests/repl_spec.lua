-- The gamlua host: command line (arg, -e, -l, -i, --help, --version, exit
-- codes) and the REPL driven for real through a terminal (tmux): values are
-- printed, tensors pretty-printed, errors keep the session and its state,
-- multi-line input, Ctrl-C, Ctrl-D, completion and persistent history.
local ffi = require 'ffi'
pcall(ffi.cdef, 'int poll(void *fds, unsigned long nfds, int timeout);')

local T = dofile((debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.') .. '/helpers.lua')
local dirname, q, run, tmpname, write = T.dirname, T.q, T.run, T.tmpname, T.write
local GAMLUA = dirname(_GAMLUA.lib) .. '/gamlua' -- the host beside the library under test

local function sleep_ms(ms) ffi.C.poll(nil, 0, ms) end

local function read(path)
  local f = io.open(path, 'r')
  if not f then return nil end
  local s = f:read('*a')
  f:close()
  return s
end

describe('the gamlua command line', function()
  it('sets the global arg like lua, and passes the arguments as ...', function()
    local script = tmpname() .. '.lua'
    write(script, 'print(arg[0], arg[1], arg[2], #arg, select("#", ...), ...)\nprint(arg[-1] ~= nil)\n')
    local out, code = run(q(GAMLUA) .. ' ' .. q(script) .. ' alpha "b c"')
    os.remove(script)
    assert.are.equal(0, code)
    assert.are.equal(script .. '\talpha\tb c\t2\t2\talpha\tb c\ntrue\n', out)
  end)

  it('-e runs code, in order, sharing state', function()
    local out, code = run(q(GAMLUA) .. ' -e "x = 20" -e "print(x + 22)"')
    assert.are.equal(0, code)
    assert.are.equal('42\n', out)
  end)

  it('-l requires a library into a global', function()
    local out = run(q(GAMLUA) .. ' -l gam -e "print(gam.is_tensor(gam.ones(1)))"')
    assert.are.equal('true\n', out)
  end)

  it('prints a tensor from any working directory', function()
    local out, code = run('cd / && ' .. q(GAMLUA) .. [[ -e 'print(require("gam").randn({2,3}))']])
    assert.are.equal(0, code)
    assert.truthy(out:find('^tensor%(%[%[.*shape=%[2, 3%], dtype=float32, device=cpu%)'), out)
  end)

  it('starts child processes on every core, though OpenMP pins its main thread', function()
    local script = tmpname() .. '.lua'
    write(script, [[
local function count(list)   -- CPUs in a list such as 0-3,6
  local n = 0
  for a, b in list:gmatch('(%d+)%-?(%d*)') do n = n + (b ~= '' and tonumber(b) - tonumber(a) + 1 or 1) end
  return n
end
local function allowed(text) return count(text:match('Cpus_allowed_list:%s*(%S+)')) end
local function mine()
  local f = io.open('/proc/self/status'); local s = f:read('*a'); f:close()
  return allowed(s)
end
local initial = mine()        -- before OpenMP starts: every CPU this process may use
local gam = require 'gam'
local x = gam.randn({256, 256}):matmul(gam.randn({256, 256}))   -- OpenMP at work
local main = mine()
local p = io.popen('grep Cpus_allowed_list /proc/self/status')
local child = allowed(p:read('*a')); p:close()
local out = os.tmpname()
os.execute('grep Cpus_allowed_list /proc/self/status > ' .. out)
local f = io.open(out); local child2 = allowed(f:read('*a')); f:close(); os.remove(out)
print(initial, main, child, child2, main == mine())
]])
    local out, code = run('env -u OMP_PROC_BIND ' .. q(GAMLUA) .. ' ' .. q(script))
    os.remove(script)
    assert.are.equal(0, code, out)
    local initial, main, popen_n, execute_n, kept = out:match('^(%d+)\t(%d+)\t(%d+)\t(%d+)\t(%a+)')
    assert.truthy(initial, out)
    assert.are.equal('true', kept)                 -- the main thread keeps its binding
    assert.is_true(tonumber(main) <= tonumber(initial), out)
    assert.are.equal(initial, popen_n)             -- children get every CPU the process had
    assert.are.equal(initial, execute_n)
  end)

  it('--help and --version', function()
    for _, flag in ipairs {'--help', '-h'} do
      local out, code = run(q(GAMLUA) .. ' ' .. flag)
      assert.are.equal(0, code)
      assert.truthy(out:find('usage: gamlua', 1, true))
      assert.truthy(out:find('-e code', 1, true) and out:find('-i', 1, true))
    end
    local out, code = run(q(GAMLUA) .. ' --version')
    assert.are.equal(0, code)
    assert.truthy(out:find('^gamlua %d+%.%d+%.%d+ %(LuaJIT'), out)
  end)

  it('reports errors with a traceback and exits 1', function()
    local out, code = run(q(GAMLUA) .. [[ -e 'local function f() error("bad thing") end f()']])
    assert.are.equal(1, code)
    assert.truthy(out:find('bad thing', 1, true) and out:find('stack traceback', 1, true), out)
    local script = tmpname() .. '.lua'
    write(script, 'print("before")\nlocal gam = require "gam"\nlocal y = gam.ones(2) + gam.ones(3)\n')
    out, code = run(q(GAMLUA) .. ' ' .. q(script))
    os.remove(script)
    assert.are.equal(1, code)
    assert.truthy(out:find('before', 1, true))
    assert.truthy(out:find('add: shapes [2] and [3] do not broadcast', 1, true), out)
    out, code = run(q(GAMLUA) .. ' /nonexistent/script.lua')
    assert.are.equal(1, code)
    assert.truthy(out:find('cannot open', 1, true), out)
    out, code = run(q(GAMLUA) .. ' --frobnicate')
    assert.are.equal(1, code)
    assert.truthy(out:find("unknown option '--frobnicate'", 1, true), out)
    out, code = run(q(GAMLUA) .. ' -e')
    assert.are.equal(1, code)
    assert.truthy(out:find('-e needs an argument', 1, true), out)
    out, code = run(q(GAMLUA) .. ' -e "x = = 1"')
    assert.are.equal(1, code)
    assert.truthy(out:find("unexpected symbol", 1, true), out)
  end)

  it('runs standard input when it is not a terminal, and with -', function()
    local out, code = run('echo "print(6 * 7)" | ' .. q(GAMLUA))
    assert.are.equal(0, code)
    assert.are.equal('42\n', out)
    out = run('echo "print(...)" | ' .. q(GAMLUA) .. ' - x y')
    assert.are.equal('x\ty\n', out)
  end)
end)

-- ---- the REPL in a real terminal -------------------------------------------
local Term = {}
Term.__index = Term

-- starts cmd in a detached tmux session on a private server
function Term.start(cmd, env)
  local self = setmetatable({}, Term)
  self.sock = 'gamlua-spec-' .. tostring(os.time()) .. '-' .. tostring(math.random(1e9))
  self.tmux = 'tmux -f /dev/null -L ' .. self.sock -- no user config
  local envs = ''
  for k, v in pairs(env or {}) do envs = envs .. k .. '=' .. q(v) .. ' ' end
  -- after the program ends the pane shows its exit code and stays open
  local inner = envs .. cmd .. '; echo "[exited $?]"; sleep 60'
  local out, code = run(self.tmux .. ' new-session -d -s t -x 200 -y 50 ' .. q(inner))
  assert(code == 0, 'tmux failed to start: ' .. out)
  return self
end

-- the pane with its scrollback; tmux trims trailing spaces, and the blank
-- lines below the cursor are dropped, so a waiting prompt ends the text as ">"
function Term:screen()
  local s = run(self.tmux .. ' capture-pane -p -J -t t -S -2000')
  return (s:gsub('%s+$', ''))
end

-- waits until the screen matches a Lua pattern (or contains plain text)
function Term:wait(pattern, plain, timeout_ms)
  local waited = 0
  timeout_ms = timeout_ms or 8000
  while true do
    local s = self:screen()
    if s:find(pattern, 1, plain) then return s end
    if waited >= timeout_ms then
      error(string.format('timed out waiting for %q; the screen shows:\n%s', pattern, s), 2)
    end
    sleep_ms(50)
    waited = waited + 50
  end
end

-- types text literally, then the named keys (Enter by default)
function Term:type(text, ...)
  if text and text ~= '' then run(self.tmux .. ' send-keys -t t -l ' .. q(text)) end
  local keys = select('#', ...) > 0 and table.concat({...}, ' ') or 'Enter'
  if keys ~= '' then run(self.tmux .. ' send-keys -t t ' .. keys) end
end

local function lit(s) return (s:gsub('[%^%$%(%)%%%.%[%]%*%+%-%?]', '%%%0')) end

-- enters a line at the prompt and waits until the REPL has printed output
-- (plain text, possibly empty) and shows its next prompt
function Term:enter(line, output, prompt)
  self:type(line)
  local body = output and output ~= '' and ('\n' .. lit(output)) or ''
  return self:wait(lit(line) .. body .. '\n' .. lit(prompt or '>') .. '$')
end

function Term:close() run(self.tmux .. ' kill-server') end

-- counts the occurrences of a plain string
local function count(s, sub)
  local n, at = 0, 1
  while true do
    local i = s:find(sub, at, true)
    if not i then return n end
    n, at = n + 1, i + #sub
  end
end

describe('the REPL', function()
  local history = tmpname()
  local env = {GAMLUA_HISTORY = history}

  it('prints values, tensors, keeps state across errors, continues multi-line input', function()
    local term = Term.start(q(GAMLUA), env)
    local ok, err = pcall(function()
      term:wait('gamlua %d+%.%d+%.%d+.*\n>$')
      term:enter('1+1', '2')
      term:enter("gam = require 'gam'")
      term:enter('gam.tensor({{1, 2}, {3, 4}})',
                 'tensor([[1., 2.],\n        [3., 4.]], shape=[2, 2], dtype=float32, device=cpu)')
      term:enter('x = 41')
      term:type('error("boom")')
      term:wait('gamlua: stdin:1: boom\nstack traceback:.*\n>$')
      term:enter('x + 1', '42')
      term:type('gam.ones(2) + gam.ones(3)')
      term:wait('add: shapes %[2%] and %[3%] do not broadcast.*\n>$')
      term:enter('function add(a, b)', nil, '>>')
      term:enter('  return a + b', nil, '>>')
      term:enter('end')
      term:enter('add(2, 3)', '5')
      term:type('1, nil, "z"')
      term:wait('\n1%s+nil%s+z\n>$')
      term:enter('local t = {', nil, '>>')
      term:enter('  n = 7 }')
      term:enter('print("no value")', 'no value')
      term:type('half typed', '') -- no Enter: wait until readline shows it, then Ctrl-C
      term:wait('> half typed$')
      term:type('', 'C-c')
      term:wait('> half typed^C\n>$')
      term:enter('x', '41')
      term:type('string.up', '')
      term:wait('> string.up$')
      term:type('', 'Tab')
      term:wait('> string.upper$')
      term:enter('("abc")', 'ABC')
      term:enter('print("history" .. "!")', 'history!')
      term:type('', 'C-d')
      term:wait('[exited 0]', true)
    end)
    local screen = term:screen()
    term:close()
    assert(ok, tostring(err))
    assert.are.equal(0, count(screen, 'Segmentation'))
    local h = read(history)
    assert(h, 'no history file at ' .. history)
    assert.truthy(h:find('1+1\n', 1, true), h)
    assert.truthy(h:find('function add(a, b)\n  return a + b\nend\n', 1, true), h)
    assert.truthy(h:find('print("history" .. "!")\n', 1, true), h)
    assert.is_nil(h:find('half typed', 1, true)) -- dropped by Ctrl-C
  end)

  it('recalls the history of an earlier session', function()
    local term = Term.start(q(GAMLUA), env)
    local ok, err = pcall(function()
      term:wait('\n>$')
      term:type('', 'Up')
      term:wait('> print("history" .. "!")', true)
      term:type('', 'Enter')
      term:wait('\nhistory!\n>$')
      term:type('', 'C-d')
      term:wait('[exited 0]', true)
    end)
    term:close()
    os.remove(history)
    assert(ok, tostring(err))
  end)

  it('completes lazy modules and methods, prints help and summaries of tensors and tables', function()
    local term = Term.start(q(GAMLUA), {GAMLUA_HISTORY = history})
    local ok, err = pcall(function()
      term:wait('help%(%) for help.*\n>$')
      term:enter("gam = require 'gam'")
      term:type('gam.opt', '')
      term:wait('> gam.opt$')
      term:type('', 'Tab')                      -- gam.optim is loaded on first use: completed all the same
      term:wait('> gam.optim$')
      term:type('', 'C-u')
      term:enter('m = gam.models.cnn_small{num_classes = 10}')
      term:type('m:zero_', 'Tab')
      term:wait('> m:zero_grad$')
      term:type('', 'C-u')
      term:type('m:', 'Tab', 'Tab')             -- the methods of the instance, its class and nn.Module
      local screen = term:wait('m:parameters')
      assert.truthy(screen:find('m:forward', 1, true), screen)
      assert.truthy(screen:find('m:flat_parameters', 1, true), screen)
      term:type('', 'C-u')
      term:type('?gam.optim.GAM')
      term:wait('accelerated variant %(Algorithm 2%).*mode = \'reference\'}.*functions: .*step.*\n>$')
      term:type('help(gam.optim.GAM.step)')
      term:wait('opt:step%(%[closure%]%) %-> pred, loss: one step.*Sharpness%.lua:%d+%) function Sharpness:step.*\n>$')
      term:type('help(m)')                      -- an instance: its class
      term:wait('nn%.Sequential{m1, m2, %.%.%.}.*\n>$')
      term:type('help(print)')
      term:wait('is a built%-in function: no Lua source, no doc comment\n>$')
      term:type('gam.manual_seed(0); x = gam.ones({40, 50}) * 2')
      term:type('x')
      term:wait('shape=%[40, 50%], dtype=float32, device=cpu%)\n%-%- 2000 elements: min 2, max 2, mean 2, std 0\n>$')
      term:type('{a = 1, t = gam.zeros({2, 3}), "s"}')
      term:wait('\n{%[1%] = "s", a = 1, t = tensor%[2x3 float32 cpu%]}\n>$')
      term:type('', 'C-d')
      term:wait('[exited 0]', true)
    end)
    local screen = term:screen()
    term:close()
    os.remove(history)
    assert(ok, tostring(err) .. '\n' .. screen)
  end)

  it('-i runs the script, then opens the REPL with its globals and its locals', function()
    local script = tmpname() .. '.lua'
    write(script, '#!/usr/bin/env gamlua\ny = 6\nlocal w = 3\nlocal w = w + 4\nlocal print = "not print"\n'
                  .. 'print_is = print\n_G.print("script ran with " .. tostring(arg[1]))\n')
    local term = Term.start(q(GAMLUA) .. ' -i ' .. q(script) .. ' first', {GAMLUA_HISTORY = history})
    local ok, err = pcall(function()
      term:wait('script ran with first\n.*\n>$')
      term:enter('y * 7', '42')
      term:enter('w * 6', '42')                 -- the last local of a name wins
      term:type('type(print), print_is')        -- a local never hides a global
      term:wait('\nfunction%s+not print\n>$')
      term:type('', 'C-d')
      term:wait('[exited 0]', true)
    end)
    term:close()
    os.remove(script)
    os.remove(history)
    assert(ok, tostring(err))
  end)

  it('Ctrl-C interrupts running Lua code and the session goes on', function()
    local term = Term.start(q(GAMLUA), {GAMLUA_HISTORY = history})
    local ok, err = pcall(function()
      term:wait('\n>$')
      term:type('z = 5; jit.off(); while true do end') -- interpreted: hooks run
      sleep_ms(200)
      term:type('', 'C-c')
      term:wait('gamlua: interrupted!\nstack traceback:.*\n>$')
      term:enter('jit.on()')
      term:enter('z', '5')
      term:type('', 'C-d')
      term:wait('[exited 0]', true)
    end)
    term:close()
    os.remove(history)
    assert(ok, tostring(err))
  end)
end)
