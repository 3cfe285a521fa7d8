-- gamlua as a rock: `luarocks make` in this folder builds libgam and the
-- gamlua host with the Makefile (`make all`, its BUILD and CUDA settings, from
-- the environment too) and installs, through `make install-rock`:
--   the Lua package  -> <tree>/share/lua/5.1/gam/
--   libgam.so        -> <tree>/lib/lua/5.1/libgam.so  (gam.lib finds it on package.cpath)
--   gamlua           -> <tree>/bin/gamlua
-- Then, with `eval "$(luarocks path)"` (or --tree T), plain `luajit -e 'require "gam"'` works.
package = 'gamlua'
version = 'scm-1'
source = {url = 'git+file:///dev/null'}   -- `luarocks make` builds the checkout it runs in
description = {
  summary = 'LuaJIT-scriptable training over a C engine: SGD, SAM, ASAM, GSAM and GAM',
  detailed = [[
gamlua: tensors with autograd over a C engine (libgam, CPU and CUDA), torch/nn-style modules,
the GAM paper's networks, and the sharpness-aware optimisers SAM, ASAM, GSAM and GAM.]],
  license = 'MIT',
}
dependencies = {'lua >= 5.1, < 5.2'}   -- LuaJIT (the engine's binding is LuaJIT's FFI)
build = {
  type = 'make',
  build_target = 'all',
  build_variables = {},
  install_target = 'install-rock',
  install_variables = {LUADIR = '$(LUADIR)', LIBDIR = '$(LIBDIR)', BINDIR = '$(BINDIR)'},
}
