/* fuzz_checkpoint.c — gam.load, the checkpoint reader: engine/checkpoint.c
 * reads the file, lua/gam/checkpoint.lua checks and decodes it and makes
 * tensors through the FFI. LuaJIT is embedded; a Lua error is a clean
 * rejection, a sanitizer report or a Lua panic is a bug.
 *
 * Coverage of the Lua decoder: libFuzzer sees only instrumented C, so a line
 * hook (the JIT is off) counts each (source, line) reached into libFuzzer's
 * extra counters, which it treats as coverage. */
#include "fuzz_util.h"
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#define NCOUNTERS 4096
__attribute__((used, section("__libfuzzer_extra_counters"))) static uint8_t counters[NCOUNTERS];

static void line_hook(lua_State *L, lua_Debug *ar) {
  if (!lua_getinfo(L, "S", ar)) return;
  uintptr_t h = (uintptr_t)ar->source * 2654435761u + (uintptr_t)ar->currentline * 40503u;
  uint8_t *c = &counters[(h >> 4) % NCOUNTERS];
  if (*c < 255) (*c)++;
}

static lua_State *L;
static long runs;

static void setup(void) {
  L = luaL_newstate();
  luaL_openlibs(L);
  const char *lua = getenv("GAM_FUZZ_LUA");
  char code[4096];
  snprintf(code, sizeof code,
           "package.path = '%s/?.lua;%s/?/init.lua;' .. package.path\n"
           "jit.off()\n"
           "local ck = require 'gam.checkpoint'\n"
           "function fuzz_one(path)\n"
           "  local ok, v = pcall(ck.load, path)\n"
           "  if ok and type(v) ~= 'nil' then pcall(ck.save, '/dev/null/x', v) end\n"
           "end\n",
           lua ? lua : "lua", lua ? lua : "lua");
  if (luaL_dostring(L, code) != 0) {
    fprintf(stderr,
            "fuzz_checkpoint: setup failed: %s\n(set GAM_FUZZ_LUA to the lua/ folder and "
            "GAMLUA_LIB to the fuzz build's libgam.so)\n",
            lua_tostring(L, -1));
    abort();
  }
  lua_sethook(L, line_hook, LUA_MASKLINE, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
  if (!L) setup();
  const char *path = fuzz_file(0, data, n);
  lua_getglobal(L, "fuzz_one");
  lua_pushstring(L, path);
  if (lua_pcall(L, 1, 0, 0) != 0) {
    fprintf(stderr, "fuzz_checkpoint: an error escaped pcall: %s\n", lua_tostring(L, -1));
    abort();
  }
  if (++runs % 64 == 0) lua_gc(L, LUA_GCCOLLECT, 0); /* tensors are freed by the collector */
  return 0;
}
