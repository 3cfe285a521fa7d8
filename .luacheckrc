-- luacheck configuration for `make lint` (Debian lua-check): lua/, scripts/, tests/.
std = 'luajit'
max_line_length = 120
-- `not (x <= y)` is how the code says "x > y, or NaN": keep it.
ignore = {'581'}
-- Methods need not use self (torch/nn style: a module's updateOutput may ignore it).
self = false
-- gamlua's host defines these for scripts and the REPL.
read_globals = {'_GAMLUA'}
-- The scripts and specs receive their command line in the global `arg`.
files['scripts/'] = {globals = {'arg'}}
files['tests/'] = {std = '+busted', globals = {'arg'}}
-- Fixtures are generated data tables.
exclude_files = {'tests/fixtures/reference_extra/*', 'build/*', 'build-*/*'}
