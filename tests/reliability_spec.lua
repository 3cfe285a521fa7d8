-- Reliability (issue 15): the holes a hostile user found, each closed and
-- kept closed here. Zero-sized IDX images, a failure inside the loader's
-- worker thread, gzip input checked before it is inflated, wrong numbers in
-- messages, stale temporary files of killed saves, and a file-size limit
-- while saving. Subprocesses show that no signal ends the process.
local gam = require 'gam'
local ffi = require 'ffi'

local here = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.'
local T = dofile(here .. '/helpers.lua')
local q, tmpdir, write, errmsg, contains, run = T.q, T.tmpdir, T.write, T.errmsg, T.contains, T.run
local gamlua = T.gamlua()
local lua_path = here .. '/../lua/?.lua;' .. here .. '/../lua/?/init.lua;' .. package.path

local function be32(n)
  return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
end

-- an IDX file of unsigned bytes with the given sizes and data
local function idx(path, sizes, data)
  local h = {'\0\0\8', string.char(#sizes)}
  for _, s in ipairs(sizes) do h[#h + 1] = be32(s) end
  write(path, table.concat(h) .. (data or ''))
end

-- runs a Lua snippet in a fresh gamlua; returns its output and exit code
local function snippet(code)
  local f = os.tmpname()
  write(f, 'package.path = ' .. string.format('%q', lua_path) .. '\n' .. code)
  local out, rc = run(q(gamlua) .. ' ' .. q(f))
  os.remove(f)
  return out, rc
end

local function listdir(dir)
  local p = io.popen('ls -A ' .. q(dir))
  local names = {}
  for l in p:lines() do names[#names + 1] = l end
  p:close()
  table.sort(names)
  return names
end

describe('the loader and zero-sized images', function()
  local dir
  setup(function() dir = tmpdir() end)
  teardown(function() os.execute('rm -rf ' .. q(dir)) end)

  it('an IDX header with 0 rows or 0 columns is an error at load time, naming the file', function()
    for _, sizes in ipairs {{3, 0, 4}, {3, 4, 0}, {0, 4, 4}} do
      local n = sizes[1]
      idx(dir .. '/im', sizes, '')
      idx(dir .. '/lb', {n}, string.rep('\1', n))
      local msg = errmsg(gam.data.idx, {images = dir .. '/im', labels = dir .. '/lb'})
      contains(msg, dir .. '/im')
      contains(msg, 'at least one image of at least 1x1 pixels')
    end
  end)

  it('a dataset of 0-pixel images is refused by the loader, not divided by in its thread', function()
    local msg = errmsg(gam.data.dataset, {images = gam.zeros({2, 1, 0, 3}, {dtype = 'uint8'}),
                                          labels = gam.zeros({2}, {dtype = 'int64'})})
    contains(msg, 'at least 1')
  end)

  it('train_cifar --cutout on an IDX pair of 0-column images ends with a message, not SIGFPE', function()
    for _, kind in ipairs {'train', 't10k'} do
      idx(dir .. '/' .. kind .. '-images-idx3-ubyte', {4, 28, 0}, '')
      idx(dir .. '/' .. kind .. '-labels-idx1-ubyte', {4}, '\0\1\2\3')
    end
    local out, rc = run(q(gamlua) .. ' ' .. q(here .. '/../scripts/train_cifar.lua') .. ' --dataset FashionMNIST '
                        .. '--data ' .. q(dir) .. ' --epochs 1 --cutout 4 --out ' .. q(dir .. '/out'))
    assert.are.equal(1, rc, out)
    contains(out, 'at least one image of at least 1x1 pixels')
  end)

  it('a failure inside the worker thread is a Lua error at the next batch, the thread joined', function()
    local ds = gam.data.dataset {images = gam.zeros({10, 1, 4, 4}, {dtype = 'uint8'}),
                                 labels = gam.zeros({10}, {dtype = 'int64'})}
    local l = gam.data.loader {dataset = ds, batch_size = 2, prefetch = 1, augment = {cutout = 2}}
    require('gam.tensor').check(require('gam.lib').gam_loader_fail_at(l.ptr, 2))
    local got = 0
    local ok, err = pcall(function() for _ in l do got = got + 1 end end)
    assert.is_false(ok)
    assert.are.equal(2, got)  -- the batches before the failure arrive
    contains(tostring(err), 'the worker thread failed at batch 3 of epoch 1')
    contains(tostring(err), 'injected failure')
    assert.are.equal(0, gam.data.loader_threads())
    require('gam.lib').gam_loader_fail_at(l.ptr, -1)
    got = 0
    for _ in l do got = got + 1 end   -- the loader works again
    assert.are.equal(5, got)
    l:close()
  end)
end)

describe('gzip IDX input', function()
  local dir
  setup(function() dir = tmpdir() end)
  teardown(function() os.execute('rm -rf ' .. q(dir)) end)

  it('checks the header against the size the gzip trailer records before inflating', function()
    -- a 1x1x1 header followed by 64 MB of zeros: 64 KB compressed
    local gz = dir .. '/bomb.gz'
    assert.are.equal(0, select(2, run(string.format([[{ printf '\0\0\10\3\0\0\0\1\0\0\0\1\0\0\0\1'; ]]
      .. [[head -c 67108864 /dev/zero; } | gzip -1 -n > %s]], q(gz)))))
    local out, rc = snippet(string.format([[
      local gam = require 'gam'
      local function hwm() return tonumber(io.open('/proc/self/status'):read('*a'):match('VmHWM:%%s*(%%d+)')) end
      local before = hwm()
      local ok, err = pcall(gam.data.idx, {images = %q, labels = %q})
      print(err)
      print('grew_kb=' .. (hwm() - before))
    ]], gz, gz))
    assert.are.equal(0, rc, out)
    contains(out, 'the gzip trailer records 67108880 bytes')
    assert.is_true(tonumber(out:match('grew_kb=(%d+)')) < 16 * 1024, out)
  end)

  it('reads a good gzip IDX file, and names trailing data of a plain one', function()
    idx(dir .. '/ok', {2, 2, 3}, string.rep('\7', 12))
    os.execute('gzip -n -k -f ' .. q(dir .. '/ok'))
    local msg = errmsg(gam.data.idx, {images = dir .. '/ok.gz', labels = dir .. '/ok.gz'})
    contains(msg, 'expected [N] (an idx1 file)')   -- read fine, then the shape check
    idx(dir .. '/long', {2, 2, 3}, string.rep('\7', 15))
    msg = errmsg(gam.data.idx, {images = dir .. '/long', labels = dir .. '/long'})
    contains(msg, '3 bytes follow the 12 data bytes the header promises')
    idx(dir .. '/short', {2, 2, 3}, string.rep('\7', 5))
    msg = errmsg(gam.data.idx, {images = dir .. '/short', labels = dir .. '/short'})
    contains(msg, 'the header promises 12 data bytes, the file has 5')
  end)
end)

describe('numbers in messages', function()
  local dir
  setup(function() dir = tmpdir() end)
  teardown(function() os.execute('rm -rf ' .. q(dir)) end)

  it('a huge payload length is reported as the huge number it is', function()
    local path = dir .. '/huge.gam'
    write(path, 'GAMLUACK\1\0\0\0\0\0\0\0' .. '\0\0\0\0\0\0\255\255' .. string.rep('\0', 8))
    local msg = errmsg(gam.load, path)
    contains(msg, 'promises a 18446462598732840960-byte payload')
    assert.is_nil(msg:find('%-%d'), msg)
  end)

  it('a file of /proc is read for what it holds, not called empty', function()
    local msg = errmsg(gam.load, '/proc/self/status')
    contains(msg, 'not a gamlua checkpoint (no GAMLUACK magic')
    msg = errmsg(gam.data.idx, {images = '/proc/self/status', labels = '/proc/self/status'})
    contains(msg, 'bad magic number')
  end)
end)

describe('interrupted and failed saves', function()
  local dir
  before_each(function() dir = tmpdir() end)
  after_each(function() os.execute('rm -rf ' .. q(dir)) end)

  it('the next save removes stale temporary files of our naming, and only those', function()
    write(dir .. '/.ck.gam.tmp.AbC123', string.rep('x', 1000))   -- a killed save's leftover
    write(dir .. '/.ck.gam.tmp.keep', 'not ours: 4 letters')
    write(dir .. '/.other.gam.tmp.AbC123', 'another file\'s')
    gam.save(dir .. '/ck.gam', {a = 1})
    assert.are.same({'.ck.gam.tmp.keep', '.other.gam.tmp.AbC123', 'ck.gam'}, listdir(dir))
    write(dir .. '/.ck.gam.tmp.Zz9zz9', 'again')
    assert.are.equal(1, gam.checkpoint.clean_temps(dir .. '/ck.gam'))
    assert.are.equal(0, gam.checkpoint.clean_temps(dir .. '/ck.gam'))
  end)

  it('a temporary file a living writer holds (flock) is left alone', function()
    pcall(ffi.cdef, 'int open(const char *p, int flags, ...); int flock(int fd, int op); int close(int fd);')
    local live = dir .. '/.ck.gam.tmp.Live01'
    write(live, 'being written')
    local fd = ffi.C.open(live, 0)
    assert.is_true(fd >= 0)
    assert.are.equal(0, ffi.C.flock(fd, 2))    -- LOCK_EX
    assert.are.equal(0, gam.checkpoint.clean_temps(dir .. '/ck.gam'))
    gam.save(dir .. '/ck.gam', {a = 1})
    assert.are.same({'.ck.gam.tmp.Live01', 'ck.gam'}, listdir(dir))
    ffi.C.close(fd)
    assert.are.equal(1, gam.checkpoint.clean_temps(dir .. '/ck.gam'))
  end)

  it('a file-size limit (ulimit -f) is a clear error; the previous checkpoint stays, no temp file', function()
    local f = os.tmpname()
    write(f, 'package.path = ' .. string.format('%q', lua_path) .. '\n' .. string.format([[
      local gam = require 'gam'
      gam.save(%q, {step = 1, w = gam.ones(10)})
      local ok, err = pcall(gam.save, %q, {step = 2, w = gam.ones(100000)})
      print(ok, err)
      local ck = gam.load(%q)
      print('step=' .. ck.step .. ' n=' .. ck.w:numel())
    ]], dir .. '/ck.gam', dir .. '/ck.gam', dir .. '/ck.gam'))
    local out, rc = run('ulimit -f 64; ' .. q(gamlua) .. ' ' .. q(f))
    os.remove(f)
    assert.are.equal(0, rc, out)   -- not 153 (killed by SIGXFSZ)
    contains(out, 'false')
    contains(out, 'File too large (a file-size limit: see ulimit -f)')
    contains(out, 'the previous ' .. dir .. '/ck.gam (if any) is unchanged')
    contains(out, 'step=1 n=10')
    assert.are.same({'ck.gam'}, listdir(dir))
  end)
end)
