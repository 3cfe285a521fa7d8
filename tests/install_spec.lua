-- `make install PREFIX=dir` gives a gamlua that works from any directory with
-- its own library and Lua package. The spec installs the build it runs from
-- (make -o keeps make from rebuilding it) into a temporary prefix.
local T = dofile((debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.') .. '/helpers.lua')
local dirname, q, run = T.dirname, T.q, T.run
local here = dirname(debug.getinfo(1, 'S').source:sub(2))
local build = dirname(_GAMLUA.lib)
local root = here .. '/..'

describe('make install', function()
  local prefix

  setup(function()
    prefix = os.tmpname()
    os.remove(prefix)
    local out, code = run(string.format('make -s -C %s install BUILD=%s PREFIX=%s -o %s -o %s',
      q(root), q(build), q(prefix), q(build .. '/libgam.so'), q(build .. '/gamlua')))
    assert(code == 0, 'make install failed:\n' .. out)
  end)

  teardown(function()
    if prefix and prefix:match('^/tmp/') then os.execute('rm -rf ' .. q(prefix)) end
  end)

  -- runs the installed gamlua from / with no hint of the build tree
  local function installed(args)
    return run('cd / && env -u GAMLUA_LIB -u LUA_PATH -u LUA_INIT ' .. q(prefix .. '/bin/gamlua') .. ' ' .. args)
  end

  it('puts the host, the library and the Lua package under the prefix', function()
    for _, f in ipairs {'/bin/gamlua', '/lib/gamlua/libgam.so', '/share/gamlua/lua/gam/init.lua',
                        '/share/gamlua/lua/gam/tensor.lua', '/share/gamlua/lua/gam/printing.lua'} do
      local h = io.open(prefix .. f, 'rb')
      assert(h, 'missing ' .. prefix .. f)
      h:close()
    end
  end)

  it('prints a random tensor from another working directory', function()
    local out, code = installed([[-e 'print(require("gam").randn({2,3}))']])
    assert.are.equal(0, code, out)
    assert.truthy(out:find('^tensor%(%[%[.*shape=%[2, 3%], dtype=float32, device=cpu%)'), out)
  end)

  it('uses the installed library and package, not the build tree', function()
    local out, code = installed([[-e 'require("gam"); print(_GAMLUA.lib); print(_GAMLUA.lua)']])
    assert.are.equal(0, code, out)
    assert.truthy(out:find(prefix .. '/lib/gamlua/libgam.so', 1, true), out)
    assert.truthy(out:find(prefix .. '/share/gamlua/lua', 1, true), out)
    out = installed([[-e 'print(package.loaded["gam.tensor"] == nil); require("gam"); print(debug.getinfo(require("gam").zeros).source)']])
    assert.truthy(out:find('@' .. prefix .. '/share/gamlua/lua/gam/tensor.lua', 1, true), out)
  end)

  it('runs a small training step and reports its version', function()
    local out, code = installed([[-e '
      local gam = require "gam"
      local w = gam.randn({3, 4}):requires_grad_()
      local loss = gam.F.cross_entropy(gam.F.linear(gam.randn(5, 4), w), gam.randint(0, 3, {5})):mean()
      loss:backward()
      print(w.grad:shape()[2])']])
    assert.are.equal(0, code, out)
    assert.are.equal('4\n', out)
    out, code = installed('--version')
    assert.are.equal(0, code)
    assert.truthy(out:find('^gamlua %d'), out)
  end)
end)
