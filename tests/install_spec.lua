-- `make install PREFIX=dir` gives a gamlua that works from any directory with
-- its own library and Lua package, and a C header and gam.pc with which a C
-- program (tests/c_api/train_tiny.c) builds by pkg-config and trains; DESTDIR
-- stages the same files with the final PREFIX recorded. The spec installs the build it runs from
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
    out = installed([[-e 'print(package.loaded["gam.tensor"] == nil); require("gam"); ]] ..
                    [[print(debug.getinfo(require("gam").zeros).source)']])
    assert.truthy(out:find('@' .. prefix .. '/share/gamlua/lua/gam/tensor.lua', 1, true), out)
  end)

  it('installs gam.h and gam.pc: a C program builds with pkg-config and trains through the C API', function()
    local pc = T.read(prefix .. '/lib/pkgconfig/gam.pc')
    assert.truthy(pc:find('prefix=' .. prefix .. '\n', 1, true), pc)
    local env = 'env PKG_CONFIG_PATH=' .. q(prefix .. '/lib/pkgconfig') .. ' '
    local out, code = run(env .. 'pkg-config --modversion gam')
    assert.are.equal(0, code, out)
    assert.truthy(out:match('^%d+%.%d+%.%d+'), out)
    local exe = prefix .. '/train_tiny'
    out, code = run(string.format('%s cc -std=c11 -Wall -Wextra -Werror %s -o %s $(%s pkg-config --cflags --libs gam)',
                                  env, q(here .. '/c_api/train_tiny.c'), q(exe), env))
    assert.are.equal(0, code, out)
    out, code = run('cd / && env -u LD_LIBRARY_PATH -u GAMLUA_LIB ' .. q(exe))
    assert.are.equal(0, code, out)
    assert.truthy(out:find('loss 1%.%d+ %-> 0%.0%d+, accuracy 1%.000'), out)
    assert.truthy(out:find('error: matmul', 1, true), out)
    local ldd = run('ldd ' .. q(exe))
    assert.truthy(ldd:find(prefix .. '/lib/gamlua/libgam.so', 1, true), ldd)
  end)

  it('stages under DESTDIR with the final PREFIX recorded', function()
    local stage = T.tmpdir()
    local out, code = run(string.format('make -s -C %s install BUILD=%s PREFIX=/opt/gamlua DESTDIR=%s -o %s -o %s',
      q(root), q(build), q(stage), q(build .. '/libgam.so'), q(build .. '/gamlua')))
    assert.are.equal(0, code, out)
    for _, f in ipairs {'/bin/gamlua', '/lib/gamlua/libgam.so', '/include/gam.h', '/share/gamlua/lua/gam/init.lua'} do
      local h = io.open(stage .. '/opt/gamlua' .. f, 'rb')
      assert(h, 'missing ' .. stage .. '/opt/gamlua' .. f)
      h:close()
    end
    local pc = T.read(stage .. '/opt/gamlua/lib/pkgconfig/gam.pc')
    assert.truthy(pc:find('prefix=/opt/gamlua\n', 1, true), pc)
    os.execute('rm -rf ' .. q(stage))
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
