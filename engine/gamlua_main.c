/* gamlua_main.c — the gamlua host: LuaJIT with the gam package on its path.
 *
 *   gamlua                     REPL (readline, history, multi-line input)
 *   gamlua script.lua a b      run a script; global arg as the lua program sets it
 *   gamlua -e 'code'           run a string
 *   gamlua -i script.lua       run, then open the REPL
 *
 * The host finds its Lua package and libgam next to itself: in the build tree
 * (build/gamlua, build/libgam.so, lua/) or installed (bin/gamlua,
 * lib/gamlua/libgam.so, share/gamlua/lua/). */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <luajit.h>
#include <readline/readline.h>
#include <readline/history.h>

#ifndef GAM_VERSION
#define GAM_VERSION "0.1.0"
#endif

static const char *usage =
    "usage: gamlua [options] [script [args...]]\n"
    "  -e code      run the string code\n"
    "  -i           open the REPL after running the script or -e code\n"
    "  -l name      require library name before the script\n"
    "  -v, --version  print the version\n"
    "  -h, --help   print this help\n"
    "  -            run standard input\n"
    "With no script and no -e, gamlua opens an interactive REPL:\n"
    "expressions print their value, unfinished statements continue on the next\n"
    "line, Ctrl-D exits; history is kept in $GAMLUA_HISTORY or ~/.gamlua_history.\n";

static int file_exists(const char *p) { return access(p, R_OK) == 0; }

/* Sets package.path and the global _GAMLUA = {lib = ..., lua = ..., version = ...}. */
static void setup_paths(lua_State *L) {
  char exe[PATH_MAX], dir[PATH_MAX], lib[PATH_MAX + 64], luadir[PATH_MAX + 64], probe[PATH_MAX + 96];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) n = 0;
  exe[n] = 0;
  strcpy(dir, exe);
  char *slash = strrchr(dir, '/');
  if (slash) *slash = 0;
  else strcpy(dir, ".");
  snprintf(lib, sizeof lib, "%s/libgam.so", dir);
  snprintf(luadir, sizeof luadir, "%s/../lua", dir);
  snprintf(probe, sizeof probe, "%s/gam/init.lua", luadir);
  if (!file_exists(lib) || !file_exists(probe)) {
    snprintf(lib, sizeof lib, "%s/../lib/gamlua/libgam.so", dir);
    snprintf(luadir, sizeof luadir, "%s/../share/gamlua/lua", dir);
  }
  const char *env_lib = getenv("GAMLUA_LIB");
  if (env_lib && *env_lib) snprintf(lib, sizeof lib, "%s", env_lib);
  char rl[PATH_MAX];
  if (realpath(luadir, rl)) snprintf(luadir, sizeof luadir, "%s", rl);
  if (realpath(lib, rl)) snprintf(lib, sizeof lib, "%s", rl);

  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", luadir, luadir, lua_tostring(L, -1));
  lua_setfield(L, -3, "path");
  lua_pop(L, 2);

  lua_newtable(L);
  lua_pushstring(L, lib);
  lua_setfield(L, -2, "lib");
  lua_pushstring(L, luadir);
  lua_setfield(L, -2, "lua");
  lua_pushstring(L, GAM_VERSION);
  lua_setfield(L, -2, "version");
  lua_setglobal(L, "_GAMLUA");
}

static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (!msg) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* Runs the function on top of the stack with nargs arguments below it. */
static int docall(lua_State *L, int nargs, int nresults) {
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, traceback);
  lua_insert(L, base);
  int status = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  return status;
}

static int report(lua_State *L, int status) {
  if (status != 0) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "gamlua: %s\n", msg ? msg : "(error object is not a string)");
    fflush(stderr);
    lua_pop(L, 1);
  }
  return status;
}

static int run_chunk(lua_State *L, int status) {
  if (status == 0) status = docall(L, 0, 0);
  return report(L, status);
}

static int require_lib(lua_State *L, const char *name) {
  lua_getglobal(L, "require");
  lua_pushstring(L, name);
  int status = report(L, docall(L, 1, 1));
  if (status == 0) lua_setglobal(L, name);
  return status;
}

/* ---- REPL ----------------------------------------------------------------- */
static char history_path[PATH_MAX];

static int incomplete(lua_State *L, int status) {
  if (status == LUA_ERRSYNTAX) {
    size_t len;
    const char *msg = lua_tolstring(L, -1, &len);
    if (msg && len >= 5 && strcmp(msg + len - 5, "<eof>") == 0) {
      lua_pop(L, 1);
      return 1;
    }
  }
  return 0;
}

/* Prints the values left on the stack from index base+1 through the REPL
 * printer (gam's pretty printer when loaded, tostring otherwise). */
static void print_results(lua_State *L, int base) {
  int n = lua_gettop(L) - base;
  if (n <= 0) return;
  lua_getglobal(L, "_GAMLUA");
  lua_getfield(L, -1, "repl_print");
  lua_remove(L, -2);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_getglobal(L, "print");
  }
  lua_insert(L, base + 1);
  report(L, docall(L, n, 0));
}

static void repl(lua_State *L) {
  const char *home = getenv("HOME");
  const char *hist = getenv("GAMLUA_HISTORY");
  if (hist && *hist) snprintf(history_path, sizeof history_path, "%s", hist);
  else snprintf(history_path, sizeof history_path, "%s/.gamlua_history", home ? home : ".");
  using_history();
  read_history(history_path);
  printf("gamlua %s (LuaJIT) -- Ctrl-D to exit; tensors, models and optimisers in require 'gam'\n",
         GAM_VERSION);
  fflush(stdout);
  char *line;
  for (;;) {
    line = readline("> ");
    if (!line) break;
    size_t cap = strlen(line) + 1;
    char *chunk = malloc(cap);
    strcpy(chunk, line);
    free(line);
    int base = lua_gettop(L), status;
    for (;;) {
      /* an expression first ("return <line>"), then a statement */
      lua_pushfstring(L, "return %s", chunk);
      status = luaL_loadbuffer(L, lua_tostring(L, -1), lua_objlen(L, -1), "=stdin");
      lua_remove(L, -2);
      if (status == 0) break;
      lua_pop(L, 1);
      status = luaL_loadbuffer(L, chunk, strlen(chunk), "=stdin");
      if (!incomplete(L, status)) break;
      char *more = readline(">> ");
      if (!more) break;
      cap += strlen(more) + 1;
      chunk = realloc(chunk, cap);
      strcat(chunk, "\n");
      strcat(chunk, more);
      free(more);
    }
    if (*chunk) {
      add_history(chunk);
      write_history(history_path);
    }
    free(chunk);
    if (status == 0) status = docall(L, 0, LUA_MULTRET);
    if (status == 0) print_results(L, base);
    else report(L, status);
    lua_settop(L, base);
  }
  printf("\n");
  fflush(stdout);
}

int main(int argc, char **argv) {
  lua_State *L = luaL_newstate();
  if (!L) {
    fprintf(stderr, "gamlua: cannot create a Lua state (out of memory)\n");
    return 1;
  }
  luaL_openlibs(L);
  setup_paths(L);

  int interactive = 0, ran_code = 0, i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(usage, stdout);
      lua_close(L);
      return 0;
    } else if (strcmp(a, "-v") == 0 || strcmp(a, "--version") == 0) {
      printf("gamlua %s (%s)\n", GAM_VERSION, LUAJIT_VERSION);
      lua_close(L);
      return 0;
    } else if (strcmp(a, "-i") == 0) {
      interactive = 1;
    } else if (strcmp(a, "-e") == 0 || strcmp(a, "-l") == 0) {
      if (i + 1 >= argc) {
        fprintf(stderr, "gamlua: %s needs an argument\n%s", a, usage);
        lua_close(L);
        return 1;
      }
      int status;
      if (a[1] == 'e') {
        status = run_chunk(L, luaL_loadbuffer(L, argv[i + 1], strlen(argv[i + 1]), "=(command line)"));
        ran_code = 1;
      } else {
        status = require_lib(L, argv[i + 1]);
      }
      if (status) { lua_close(L); return 1; }
      i++;
    } else if (strcmp(a, "--") == 0) {
      i++;
      break;
    } else if (a[0] == '-' && a[1] != 0) {
      fprintf(stderr, "gamlua: unknown option '%s'\n%s", a, usage);
      lua_close(L);
      return 1;
    } else {
      break;
    }
  }

  int status = 0;
  if (i < argc) { /* script: arg[0] is the script, arg[1..] its arguments, arg[-k] the options */
    lua_createtable(L, argc - i, i + 1);
    for (int k = 0; k < argc; k++) {
      lua_pushstring(L, argv[k]);
      lua_rawseti(L, -2, k - i);
    }
    lua_setglobal(L, "arg");
    const char *script = argv[i];
    int nargs = argc - i - 1;
    status = strcmp(script, "-") == 0 ? luaL_loadfile(L, NULL) : luaL_loadfile(L, script);
    if (status == 0) {
      for (int k = i + 1; k < argc; k++) lua_pushstring(L, argv[k]);
      status = docall(L, nargs, 0);
    }
    report(L, status);
    ran_code = 1;
  }
  if (status == 0 && (interactive || !ran_code)) {
    if (!interactive && !isatty(0)) status = run_chunk(L, luaL_loadfile(L, NULL));
    else repl(L);
  }
  lua_close(L);
  return status ? 1 : 0;
}
