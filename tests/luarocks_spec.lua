-- gamlua as a rock (gamlua-scm-1.rockspec, `luarocks make`) in a temporary
-- tree: plain luajit then requires gam through `luarocks path`, the gamlua host
-- of the tree finds its package and the tree's other rocks by itself, and any
-- gamlua finds rocks of the user tree (~/.luarocks). The rock is built from the
-- build folder under test (BUILD and CUDA passed through the environment, so
-- make finds it up to date).
local gam = require 'gam'
local T = dofile((debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.') .. '/helpers.lua')
local dirname, q, run, contains = T.dirname, T.q, T.run, T.contains
local here = dirname(debug.getinfo(1, 'S').source:sub(2))
local build = dirname(_GAMLUA.lib)
local root = here .. '/..'

-- writes a one-module pure-Lua rock (builtin type) into a new folder; returns the rockspec's path
local function tiny_rock(name)
  local dir = T.tmpdir()
  T.write(dir .. '/' .. name .. '.lua', 'return {hello = "hello from ' .. name .. '"}\n')
  local spec = dir .. '/' .. name .. '-1.0-1.rockspec'
  T.write(spec, string.format([[
package = '%s'
version = '1.0-1'
source = {url = 'git+file:///dev/null'}
dependencies = {'lua >= 5.1'}
build = {type = 'builtin', modules = {%s = '%s.lua'}}
]], name, name, name))
  return spec, dir
end

describe('luarocks make (gamlua-scm-1.rockspec)', function()
  local tree, home
  local env_clean = 'env -u GAMLUA_LIB -u LUA_PATH -u LUA_CPATH -u LUA_INIT '

  setup(function()
    tree, home = T.tmpname(), T.tmpdir()
    local out, code = run(string.format('cd %s && HOME=%s BUILD=%s CUDA=%s luarocks make --tree %s', q(root), q(home),
                                        q(build), gam.cuda_built() and '1' or '0', q(tree)))
    assert(code == 0, 'luarocks make failed:\n' .. out)
  end)

  teardown(function()
    for _, d in ipairs {tree, home} do
      if d and d:match('^/tmp/') then os.execute('rm -rf ' .. q(d)) end
    end
  end)

  it('installs the Lua package, libgam and the host into the tree', function()
    for _, f in ipairs {'/share/lua/5.1/gam/init.lua', '/share/lua/5.1/gam/log/tensorboard.lua',
                        '/lib/lua/5.1/libgam.so', '/bin/gamlua'} do
      local h = io.open(tree .. f, 'rb')
      assert(h, 'missing ' .. tree .. f)
      h:close()
    end
    local out = run('HOME=' .. q(home) .. ' luarocks --tree ' .. q(tree) .. ' list --porcelain')
    contains(out, 'gamlua\tscm-1\tinstalled')
  end)

  it('lets plain luajit require gam after `luarocks path`, loading the tree\'s libgam', function()
    local out, code = run(string.format(
      '%s bash -c %s', env_clean, q(string.format([[eval "$(luarocks --tree %s path)" && cd / && luajit -e '
        local gam = require "gam"
        local x = gam.tensor({{1, 2}, {3, 4}}):requires_grad_()
        local loss = (x * x):sum()
        loss:backward()
        print(package.searchpath("gam", package.path))
        print(x.grad:totable()[2][1])
        for line in io.lines("/proc/self/maps") do
          if line:find("libgam.so", 1, true) then print(line:match("(/%%S+)$")) break end
        end']], q(tree)))))
    assert.are.equal(0, code, out)
    contains(out, tree .. '/share/lua/5.1/gam/init.lua')
    contains(out, '\n6\n')
    contains(out, tree .. '/lib/lua/5.1/libgam.so')
  end)

  it('finds libgam through GAMLUA_LIB, and says how when it cannot', function()
    local lua = root .. '/lua'
    local path = string.format("LUA_PATH='%s/?.lua;%s/?/init.lua;;' ", lua, lua)
    local out, code = run(env_clean .. path .. 'GAMLUA_LIB=' .. q(_GAMLUA.lib)
                          .. [[ luajit -e 'print(require("gam").ones({3}):sum():item())']])
    assert.are.equal(0, code, out)
    assert.are.equal('3\n', out)
    out, code = run(env_clean .. path .. "GAMLUA_LIB=/nowhere/libgam.so luajit -e 'require(\"gam\")'")
    assert.are_not.equal(0, code)
    contains(out, 'GAMLUA_LIB=/nowhere/libgam.so names no readable file')
    -- the package alone, with no library beside it or on the paths
    local alone = T.tmpdir()
    os.execute('cp -r ' .. q(lua .. '/gam') .. ' ' .. q(alone))
    out, code = run(env_clean .. string.format("LUA_PATH='%s/?.lua;%s/?/init.lua;;' LUA_CPATH='%s/?.so' ", alone, alone,
                                               alone) .. "luajit -e 'require(\"gam\")'")
    assert.are_not.equal(0, code)
    contains(out, 'cannot find libgam.so')
    contains(out, 'set GAMLUA_LIB')
    os.execute('rm -rf ' .. q(alone))
  end)

  it("runs the tree's gamlua host with no environment, finding the tree's other rocks", function()
    local spec, dir = tiny_rock('gamlua_tiny_rock')
    local out, code = run(string.format('cd %s && HOME=%s luarocks make --tree %s %s', q(dir), q(home), q(tree),
                                        q(spec)))
    assert.are.equal(0, code, out)
    out, code = run('cd / && ' .. env_clean .. 'HOME=' .. q(home) .. ' ' .. q(tree .. '/bin/gamlua') .. [[ -e '
      local gam = require "gam"
      print(require("gamlua_tiny_rock").hello, gam.ones({2}):sum():item(), _GAMLUA.lib)']])
    assert.are.equal(0, code, out)
    contains(out, 'hello from gamlua_tiny_rock\t2\t' .. tree .. '/lib/lua/5.1/libgam.so')
    os.execute('rm -rf ' .. q(dir))
  end)

  it('finds rocks of the user tree (luarocks --local) from any gamlua', function()
    local spec, dir = tiny_rock('gamlua_user_rock')
    local out, code = run(string.format('cd %s && HOME=%s luarocks make --local %s', q(dir), q(home), q(spec)))
    assert.are.equal(0, code, out)
    out, code = run('cd / && ' .. env_clean .. 'HOME=' .. q(home) .. ' ' .. q(build .. '/gamlua')
                    .. [[ -e 'print(require("gamlua_user_rock").hello)']])
    assert.are.equal(0, code, out)
    assert.are.equal('hello from gamlua_user_rock\n', out)
    os.execute('rm -rf ' .. q(dir))
  end)
end)
