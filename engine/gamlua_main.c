/* gamlua_main.c — the gamlua host: LuaJIT with the gam package on its path.
 *
 *   gamlua                     REPL (readline, history, multi-line input)
 *   gamlua script.lua a b      run a script; global arg as the lua program sets it
 *   gamlua -e 'code'           run a string
 *   gamlua -i script.lua       run, then open the REPL
 *   gamlua -l name             require name into the global name first
 *
 * The host finds its Lua package and libgam next to itself: in the build tree
 * (build/gamlua, build/libgam.so, lua/), installed (bin/gamlua,
 * lib/gamlua/libgam.so, share/gamlua/lua/) or in a luarocks tree (bin/gamlua,
 * lib/lua/5.1/libgam.so, share/lua/5.1/). */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/select.h>
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
    "  -i           open the REPL after running the script or -e code; the\n"
    "               script's top-level locals become globals there (those\n"
    "               whose name is not a global already; a script ending in\n"
    "               `return` keeps only its globals)\n"
    "  -l name      require library name before the script\n"
    "  -v, --version  print the version\n"
    "  -h, --help   print this help\n"
    "  -            run standard input\n"
    "With no script and no -e, gamlua opens an interactive REPL:\n"
    "expressions print their value, unfinished statements continue on the next\n"
    "line, Tab completes names, Ctrl-C drops the line or interrupts running code,\n"
    "Ctrl-D exits; history is kept in $GAMLUA_HISTORY or ~/.gamlua_history.\n"
    "The script's arguments are in the global table arg (arg[0] is the script).\n"
    "Modules are found in gamlua's own package, then as by luajit (LUA_PATH,\n"
    "LUA_CPATH, the system luarocks tree), then in ~/.luarocks (the user tree).\n"
    "Environment: GAMLUA_LIB overrides the libgam.so to load.\n";

/* ---- child processes get every core ------------------------------------------------------
 * With OMP_PROC_BIND (set below) OpenMP binds the main thread to one core, and
 * a child process inherits the affinity of the thread that starts it: without
 * this, every program started by io.popen or os.execute (a benchmark's PyTorch
 * peer, say) would run on that one core. The wrapped functions let the main
 * thread run on every online core while they start the child, then restore
 * its binding. */
static int unpinned_call(lua_State *L) {
  cpu_set_t saved, all;
  int pinned = sched_getaffinity(0, sizeof saved, &saved) == 0;
  if (pinned) {
    CPU_ZERO(&all);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    for (long c = 0; c < n && c < CPU_SETSIZE; c++) CPU_SET((int)c, &all);
    pinned = sched_setaffinity(0, sizeof all, &all) == 0;
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  int status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
  if (pinned) sched_setaffinity(0, sizeof saved, &saved);
  if (status != 0) return lua_error(L);
  return lua_gettop(L);
}

/* lib.name = a wrapper calling the original with the main thread unpinned */
static void wrap_unpinned(lua_State *L, const char *lib, const char *name) {
  lua_getglobal(L, lib);
  lua_getfield(L, -1, name);
  lua_pushcclosure(L, unpinned_call, 1);
  lua_setfield(L, -2, name);
  lua_pop(L, 1);
}

static int file_exists(const char *p) { return access(p, R_OK) == 0; }

static int keep_locals(lua_State *L);

/* Sets package.path and the global _GAMLUA = {lib = ..., lua = ..., version = ...}. */
static void setup_paths(lua_State *L) {
  char exe[PATH_MAX], dir[PATH_MAX], lib[PATH_MAX + 64], luadir[PATH_MAX + 64], probe[PATH_MAX + 96];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) n = 0;
  exe[n] = 0;
  strcpy(dir, exe);
  char *slash = strrchr(dir, '/');
  if (slash)
    *slash = 0;
  else
    strcpy(dir, ".");
  snprintf(lib, sizeof lib, "%s/libgam.so", dir);
  snprintf(luadir, sizeof luadir, "%s/../lua", dir);
  snprintf(probe, sizeof probe, "%s/gam/init.lua", luadir);
  if (!file_exists(lib) || !file_exists(probe)) {
    snprintf(lib, sizeof lib, "%s/../lib/gamlua/libgam.so", dir);
    snprintf(luadir, sizeof luadir, "%s/../share/gamlua/lua", dir);
    snprintf(probe, sizeof probe, "%s/gam/init.lua", luadir);
  }
  if (!file_exists(lib) || !file_exists(probe)) { /* a luarocks tree: bin/, share/lua/5.1/, lib/lua/5.1/ */
    snprintf(lib, sizeof lib, "%s/../lib/lua/5.1/libgam.so", dir);
    snprintf(luadir, sizeof luadir, "%s/../share/lua/5.1", dir);
  }
  const char *env_lib = getenv("GAMLUA_LIB");
  if (env_lib && *env_lib) snprintf(lib, sizeof lib, "%s", env_lib);
  char rl[PATH_MAX];
  if (realpath(luadir, rl)) snprintf(luadir, sizeof luadir, "%s", rl);
  if (realpath(lib, rl)) snprintf(lib, sizeof lib, "%s", rl);

  /* package.path: our package first, then LuaJIT's (LUA_PATH, the system
   * luarocks tree), then the user's luarocks tree; the same for C modules. */
  const char *home = getenv("HOME");
  char rocks[PATH_MAX];
  snprintf(rocks, sizeof rocks, "%s/.luarocks", home && *home ? home : "/nonexistent");
  char cdir[PATH_MAX + 128], cpath_first[PATH_MAX + 16] = "";
  snprintf(cdir, sizeof cdir, "%s/../../../lib/lua/5.1", luadir); /* a luarocks tree's C modules */
  if (realpath(cdir, rl)) snprintf(cpath_first, sizeof cpath_first, "%s/?.so;", rl);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s;%s/share/lua/5.1/?.lua;%s/share/lua/5.1/?/init.lua", luadir,
                  luadir, lua_tostring(L, -1), rocks, rocks);
  lua_setfield(L, -3, "path");
  lua_pop(L, 1);
  lua_getfield(L, -1, "cpath");
  lua_pushfstring(L, "%s%s;%s/lib/lua/5.1/?.so", cpath_first, lua_tostring(L, -1), rocks);
  lua_setfield(L, -3, "cpath");
  lua_pop(L, 2);

  lua_newtable(L);
  lua_pushstring(L, lib);
  lua_setfield(L, -2, "lib");
  lua_pushstring(L, luadir);
  lua_setfield(L, -2, "lua");
  lua_pushstring(L, GAM_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushcfunction(L, keep_locals);
  lua_setfield(L, -2, "keep_locals");
  lua_setglobal(L, "_GAMLUA");
}

/* Message handler: appends a traceback, unless the message already carries
 * one (an error rethrown by gam.scope keeps the trace of where it happened). */
static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (!msg) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  if (strstr(msg, "\nstack traceback:")) {
    lua_pushstring(L, msg);
    return 1;
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* ---- Ctrl-C ----------------------------------------------------------------
 * In the REPL, Ctrl-C while Lua runs raises "interrupted!" at the next
 * interpreted Lua instruction (as the lua program does; a second Ctrl-C ends
 * the program); at the prompt it drops the line being typed. */
static lua_State *interrupt_L; /* set while the REPL runs */
static volatile sig_atomic_t lua_running, sigint_at_prompt;

static void stop_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L, "interrupted!");
}

static void on_sigint(int sig) {
  if (lua_running && interrupt_L) {
    /* Compiled loops do not run hooks: a second Ctrl-C ends the program. */
    static const char hint[] = "\n(interrupting at the next Lua instruction; Ctrl-C again to quit)\n";
    signal(sig, SIG_DFL);
    if (write(STDERR_FILENO, hint, sizeof hint - 1) < 0) { /* nothing to do */
    }
    lua_sethook(interrupt_L, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
  } else {
    sigint_at_prompt = 1;
  }
}

static void catch_sigint(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL); /* no SA_RESTART: select() returns on Ctrl-C */
}

/* Runs the function on top of the stack with nargs arguments below it. */
static int docall(lua_State *L, int nargs, int nresults) {
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, traceback);
  lua_insert(L, base);
  lua_running = 1;
  int status = lua_pcall(L, nargs, nresults, base);
  lua_running = 0;
  lua_sethook(L, NULL, 0, 0);
  if (interrupt_L) catch_sigint(); /* the REPL's handler, again after a Ctrl-C */
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

/* After an error that ended a script or -e chunk: calls _GAMLUA.on_error
 * when some module set it (gam.dist: ends every process of an MPI job, so
 * that the other ranks do not wait for this one forever). */
static void error_hook(lua_State *L) {
  lua_getglobal(L, "_GAMLUA");
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "on_error");
    if (lua_isfunction(L, -1)) lua_pcall(L, 0, 0, 0);
    lua_settop(L, 0);
  }
  lua_settop(L, 0);
}

static int run_chunk(lua_State *L, int status) {
  if (status == 0) status = docall(L, 0, 0);
  report(L, status);
  if (status) error_hook(L);
  return status;
}

static int require_lib(lua_State *L, const char *name) {
  lua_getglobal(L, "require");
  lua_pushstring(L, name);
  int status = report(L, docall(L, 1, 1));
  if (status == 0) lua_setglobal(L, name);
  return status;
}

/* ---- gamlua -i script: the script's locals stay reachable ------------------ */
/* _GAMLUA.keep_locals(), called as the last statement of the script's chunk:
 * copies the chunk's active locals into globals of the same name, unless a
 * global of that name exists (a later local of one name wins over an earlier). */
static int keep_locals(lua_State *L) {
  lua_Debug ar;
  if (!lua_getstack(L, 1, &ar)) return 0;
  lua_newtable(L); /* names set here */
  int mine = lua_gettop(L);
  const char *name;
  for (int i = 1; (name = lua_getlocal(L, &ar, i)) != NULL; i++) {
    int value = lua_gettop(L);
    if (name[0] != '(') {
      lua_getfield(L, mine, name);
      int ours = lua_toboolean(L, -1);
      lua_getglobal(L, name);
      int free_name = lua_isnil(L, -1);
      lua_pop(L, 2);
      if (ours || free_name) {
        lua_pushvalue(L, value);
        lua_setglobal(L, name);
        lua_pushboolean(L, 1);
        lua_setfield(L, mine, name);
      }
    }
    lua_settop(L, mine);
  }
  return 0;
}

/* Loads a script for -i: its text with a call of _GAMLUA.keep_locals()
 * appended (a first line starting with # becomes a comment, as luaL_loadfile
 * skips it); a script that does not load so (one ending in `return ...`)
 * loads as it is. */
static int load_keeping_locals(lua_State *L, const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return luaL_loadfile(L, path); /* its error message */
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  int c = fgetc(f);
  if (c == '#') luaL_addstring(&b, "--");
  if (c != EOF) luaL_addchar(&b, (char)c);
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) luaL_addlstring(&b, chunk, n);
  fclose(f);
  luaL_addstring(&b, "\n_GAMLUA.keep_locals()\n");
  luaL_pushresult(&b);
  lua_pushfstring(L, "@%s", path);
  size_t len;
  const char *text = lua_tolstring(L, -2, &len);
  int status = luaL_loadbuffer(L, text, len, lua_tostring(L, -1));
  lua_remove(L, -2); /* the chunk name */
  lua_remove(L, -2); /* the text */
  if (status == LUA_ERRSYNTAX) {
    lua_pop(L, 1);
    return luaL_loadfile(L, path);
  }
  return status;
}

/* ---- REPL ----------------------------------------------------------------- */
static char history_path[PATH_MAX];

/* A syntax error at the end of the input: the statement continues. */
static int incomplete(lua_State *L, int status) {
  if (status == LUA_ERRSYNTAX) {
    size_t len;
    const char *msg = lua_tolstring(L, -1, &len);
    const char *mark = "'<eof>'";
    size_t ml = strlen(mark);
    if (msg && len >= ml && strcmp(msg + len - ml, mark) == 0) return 1;
  }
  return 0;
}

/* Loads chunk as an expression whose values are printed, else as a
 * statement. The expression form is `return v(<chunk>\n)` with v the identity
 * (passed as the chunk's vararg), so that a call in chunk is no tail call and
 * errors keep their position ("stdin:1: boom"). Leaves the function, or the
 * error message, on the stack. */
static int identity(lua_State *L) { return lua_gettop(L); }

static int load_line(lua_State *L, const char *chunk, int *is_expr) {
  lua_pushfstring(L, "local __gamlua_values = ...; return __gamlua_values(%s\n)", chunk);
  int status = luaL_loadbuffer(L, lua_tostring(L, -1), lua_objlen(L, -1), "=stdin");
  lua_remove(L, -2);
  *is_expr = status == 0;
  if (status == 0) return 0;
  lua_pop(L, 1);
  return luaL_loadbuffer(L, chunk, strlen(chunk), "=stdin");
}

/* Prints the values on the stack above base through _GAMLUA.repl_print when
 * set, else print (tensors print themselves through __tostring). */
static void print_results(lua_State *L, int base) {
  int n = lua_gettop(L) - base;
  if (n <= 0) return;
  lua_getglobal(L, "_GAMLUA");
  if (lua_istable(L, -1))
    lua_getfield(L, -1, "repl_print");
  else
    lua_pushnil(L);
  lua_remove(L, -2);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_getglobal(L, "print");
  }
  lua_insert(L, base + 1);
  report(L, docall(L, n, 0));
}

/* One line from readline's callback interface, so that Ctrl-C can drop the
 * line being edited. NULL at end of input; *interrupted on Ctrl-C. */
static char *line_read;
static int line_done;
static void on_line(char *line) {
  line_read = line;
  line_done = 1;
  rl_callback_handler_remove();
}

static char *read_line(const char *prompt, int *interrupted) {
  *interrupted = 0;
  line_read = NULL;
  line_done = 0;
  sigint_at_prompt = 0;
  rl_callback_handler_install(prompt, on_line);
  while (!line_done) {
    int fd = fileno(rl_instream);
    fd_set fds;
    FD_ZERO(&fds);
    FD_SET(fd, &fds);
    int r = select(fd + 1, &fds, NULL, NULL, NULL);
    if (sigint_at_prompt) {
      sigint_at_prompt = 0;
      rl_point = rl_end; /* show ^C after the dropped text, then a fresh line */
      rl_redisplay();
      fputs("^C\n", rl_outstream ? rl_outstream : stdout);
      fflush(rl_outstream ? rl_outstream : stdout);
      rl_free_line_state();
      rl_callback_sigcleanup();
      rl_callback_handler_remove();
      *interrupted = 1;
      return NULL;
    }
    if (r < 0) {
      if (errno == EINTR) continue;
      rl_callback_handler_remove();
      return NULL;
    }
    rl_callback_read_char();
  }
  return line_read;
}

/* ---- completion: _GAMLUA.complete(text) -> sorted list of candidates
 * (lua/gam/repl.lua: globals, keywords, fields of tables, methods), run
 * protected; without it (gam.repl not found) Tab completes nothing. */
static lua_State *complete_L;
static char **completions;
static int completion_count, completion_next;

static char *completion_generator(const char *text, int state) {
  (void)text;
  if (state == 0) completion_next = 0;
  if (completion_next < completion_count) return strdup(completions[completion_next++]);
  return NULL;
}

static char **complete(const char *text, int start, int end) {
  (void)start;
  (void)end;
  rl_attempted_completion_over = 1; /* never fall back to file names */
  rl_completion_append_character = '\0';
  for (int k = 0; k < completion_count; k++) free(completions[k]);
  free(completions);
  completions = NULL;
  completion_count = 0;
  lua_State *L = complete_L;
  int top = lua_gettop(L);
  lua_getglobal(L, "_GAMLUA");
  if (lua_istable(L, -1))
    lua_getfield(L, -1, "complete");
  else
    lua_pushnil(L);
  if (lua_isfunction(L, -1)) {
    lua_pushstring(L, text);
    if (lua_pcall(L, 1, 1, 0) == 0 && lua_istable(L, -1)) {
      int n = (int)lua_objlen(L, -1);
      completions = calloc((size_t)(n ? n : 1), sizeof *completions);
      for (int k = 1; completions && k <= n; k++) {
        lua_rawgeti(L, -1, k);
        const char *c = lua_tostring(L, -1);
        if (c) completions[completion_count++] = strdup(c);
        lua_pop(L, 1);
      }
    }
  }
  lua_settop(L, top);
  if (completion_count == 0) return NULL;
  return rl_completion_matches(text, completion_generator);
}

static void repl(lua_State *L) {
  const char *home = getenv("HOME");
  const char *hist = getenv("GAMLUA_HISTORY");
  if (hist && *hist)
    snprintf(history_path, sizeof history_path, "%s", hist);
  else
    snprintf(history_path, sizeof history_path, "%s/.gamlua_history", home ? home : ".");
  rl_readline_name = "gamlua";
  rl_catch_signals = 0; /* Ctrl-C is ours (on_sigint) */
  rl_basic_word_break_characters = " \t\n\"\\'><=;+-*/%^~#{}()[],?";
  rl_attempted_completion_function = complete;
  complete_L = L;
  using_history();
  stifle_history(1000);
  read_history(history_path);
  interrupt_L = L;
  catch_sigint();

  /* help(x), ?x and the printer of results (lua/gam/repl.lua); the REPL works without them */
  const char *install = "local ok, repl = pcall(require, 'gam.repl') if ok then repl.install() end";
  if (luaL_loadstring(L, install) == 0)
    report(L, docall(L, 0, 0));
  else
    lua_pop(L, 1);
  printf("gamlua %s (%s) -- Ctrl-D to exit, Ctrl-C to interrupt, help() for help; try  gam = require 'gam'\n",
         GAM_VERSION, LUAJIT_VERSION);
  fflush(stdout);
  for (;;) {
    int interrupted;
    char *line = read_line("> ", &interrupted);
    if (interrupted) continue;
    if (!line) break; /* Ctrl-D */
    const char *start = line;
    while (*start == ' ' || *start == '\t') start++;
    char *chunk;
    if (*start == '?') { /* ?x is help(x) */
      chunk = malloc(strlen(start) + 8);
      if (chunk) sprintf(chunk, "help(%s)", start + 1);
    } else {
      chunk = strdup(line);
    }
    free(line);
    if (!chunk) break;
    int base = lua_gettop(L), status, is_expr = 0;
    for (;;) { /* read lines until the chunk is complete */
      status = load_line(L, chunk, &is_expr);
      if (!incomplete(L, status)) break;
      char *more = read_line(">> ", &interrupted);
      if (!more) break; /* Ctrl-C or Ctrl-D drop the unfinished chunk */
      lua_pop(L, 1);
      char *grown = malloc(strlen(chunk) + strlen(more) + 2);
      if (!grown) {
        free(more);
        break;
      }
      sprintf(grown, "%s\n%s", chunk, more);
      free(chunk);
      free(more);
      chunk = grown;
    }
    if (interrupted) { /* Ctrl-C in a continuation line: drop the chunk */
      free(chunk);
      lua_settop(L, base);
      continue;
    }
    if (*chunk) {
      add_history(chunk);
      write_history(history_path);
    }
    free(chunk);
    if (status == 0) {
      if (is_expr) {
        lua_pushcfunction(L, identity);
        status = docall(L, 1, LUA_MULTRET);
      } else {
        status = docall(L, 0, LUA_MULTRET);
      }
    }
    if (status == 0)
      print_results(L, base);
    else
      report(L, status);
    lua_settop(L, base);
  }
  printf("\n");
  fflush(stdout);
  interrupt_L = NULL;
  signal(SIGINT, SIG_DFL);
}

int main(int argc, char **argv) {
  /* Pin OpenMP threads to cores unless the user chose otherwise: on small
   * machines threads migrating between cores made some passes twice as slow
   * (cnn_small, 2 threads: SGD steps of 45 ms jumped to 110-130 ms at random).
   * libgomp reads this when libgam loads it, after this point. Not under an MPI launcher (mpirun): every rank would pin its threads to
   * the same first cores; the launcher binds ranks itself (--bind-to). */
  if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMI_SIZE") && !getenv("PMIX_RANK"))
    setenv("OMP_PROC_BIND", "true", 0);
  lua_State *L = luaL_newstate();
  if (!L) {
    fprintf(stderr, "gamlua: cannot create a Lua state (out of memory)\n");
    return 1;
  }
  luaL_openlibs(L);
  wrap_unpinned(L, "io", "popen");
  wrap_unpinned(L, "os", "execute");
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
      if (status) {
        lua_close(L);
        return 1;
      }
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
    if (strcmp(script, "-") == 0)
      status = luaL_loadfile(L, NULL);
    else
      status = interactive ? load_keeping_locals(L, script) : luaL_loadfile(L, script);
    if (status == 0) {
      for (int k = i + 1; k < argc; k++) lua_pushstring(L, argv[k]);
      status = docall(L, nargs, 0);
    }
    report(L, status);
    if (status) error_hook(L);
    ran_code = 1;
  }
  if (status == 0 && (interactive || !ran_code)) {
    if (!interactive && !isatty(0))
      status = run_chunk(L, luaL_loadfile(L, NULL));
    else
      repl(L);
  }
  lua_close(L);
  return status ? 1 : 0;
}
