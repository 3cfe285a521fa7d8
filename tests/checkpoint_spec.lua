-- Checkpoints: gam.save / gam.load round trips, atomic writes, and every way a
-- file can be bad (truncated, corrupt, foreign, wrong version, missing).
local gam = require 'gam'
local here = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.'
local T = dofile(here .. '/helpers.lua')
local tmpdir, read, write, errmsg, contains = T.tmpdir, T.read, T.write, T.errmsg, T.contains

local function listdir(dir)
  local r = {}
  local p = io.popen('ls -A ' .. dir)
  for l in p:lines() do r[#r + 1] = l end
  p:close()
  table.sort(r)
  return r
end

local function same_tensor(a, b)
  assert.is_true(gam.is_tensor(b))
  assert.are.equal(a:dtype(), b:dtype())
  assert.are.same(a:shape(), b:shape())
  assert.are.same(a:tolist(), b:tolist())
end

describe('gam.save / gam.load', function()
  local dir
  before_each(function() dir = tmpdir() end)
  after_each(function() os.execute('rm -rf ' .. dir) end)

  local function sample()
    gam.manual_seed(3)
    local big = gam.randn({4, 3, 5, 5})
    return {
      model = {['conv1.weight'] = big, ['bn.running_mean'] = gam.zeros(5),
               ['fc.bias'] = gam.randn({10}):requires_grad_(true)},
      labels = gam.tensor({0, 9, 3}, {dtype = 'int64'}),
      image = gam.tensor({{0, 255}, {7, 128}}, {dtype = 'uint8'}),
      scalar = gam.tensor(2.5),
      empty = gam.zeros({0, 3}),
      view = big:narrow(1, 2, 2),
      numbers = {0, -1.5, 1e300, -1e-300, math.huge, -math.huge, 2 ^ 53 + 2},
      strings = {'', 'plain', 'bytes\0\1\255 and\nnewlines'},
      flags = {[true] = 'yes', [false] = 'no'},
      nested = {a = {b = {c = {d = {e = 'deep'}}}}},
      [3] = 'number key', [0.5] = 'fractional key',
      epoch = 7, lr = 0.05, name = 'run',
    }
  end

  it('round-trips nested tables of tensors, numbers, strings and booleans', function()
    local v = sample()
    local path = dir .. '/ck.gam'
    assert.are.equal(path, gam.save(path, v))
    local r = gam.load(path)
    for k, t in pairs(v.model) do same_tensor(t, r.model[k]) end
    assert.is_true(r.model['fc.bias'].requires_grad)
    assert.is_false(r.model['conv1.weight'].requires_grad)
    same_tensor(v.labels, r.labels)
    same_tensor(v.image, r.image)
    same_tensor(v.scalar, r.scalar)
    assert.are.equal(0, r.scalar:dim())
    same_tensor(v.empty, r.empty)
    same_tensor(v.view, r.view)
    assert.are.same(v.numbers, r.numbers)
    assert.are.same(v.strings, r.strings)
    assert.are.same(v.flags, r.flags)
    assert.are.same(v.nested, r.nested)
    assert.are.equal('number key', r[3])
    assert.are.equal('fractional key', r[0.5])
    assert.are.equal(7, r.epoch)
    assert.are.equal(0.05, r.lr)
    assert.are.equal('run', r.name)
    local nan = gam.load((gam.save(dir .. '/nan.gam', {0 / 0})))
    assert.is_true(nan[1] ~= nan[1])
    -- a bare tensor or number is a value too
    same_tensor(v.labels, gam.load((gam.save(dir .. '/t.gam', v.labels))))
    assert.are.equal(42, gam.load((gam.save(dir .. '/n.gam', 42))))
  end)

  it('writes the same bytes for the same value', function()
    local v = sample()
    gam.save(dir .. '/a.gam', v)
    gam.save(dir .. '/b.gam', v)
    assert.are.equal(read(dir .. '/a.gam'), read(dir .. '/b.gam'))
    assert.are.equal('GAMLUACK\1\0\0\0\0\0\0\0', read(dir .. '/a.gam'):sub(1, 16))
  end)

  it('loads onto the cpu by default and checks the device option', function()
    local path = gam.save(dir .. '/d.gam', {w = gam.ones(3)})
    assert.are.equal('cpu', gam.load(path, {device = 'cpu'}).w:device())
    contains(errmsg(gam.load, path, {device = 'tpu'}), "unknown device 'tpu'")
    contains(errmsg(gam.load, path, 'cpu'), 'options must be a table')
  end)

  it('keeps memory deterministic: loaded tensors belong to the scope', function()
    local path = gam.save(dir .. '/m.gam', sample())
    collectgarbage(); collectgarbage()
    local m0 = gam.memory()
    gam.scope(function()
      for _ = 1, 5 do gam.load(path) end
    end)
    local m1 = gam.memory()
    assert.are.equal(m0.live_tensors, m1.live_tensors)
    assert.are.equal(m0.live_bytes, m1.live_bytes)
  end)

  it('refuses what it cannot save, naming the key, and writes nothing', function()
    local path = dir .. '/x.gam'
    contains(errmsg(gam.save, path, {opt = {step = print}}), 'opt.step is a function')
    contains(errmsg(gam.save, path, {a = {io.stdout}}), 'a[1] is a userdata')
    local c = {}
    c.again = c
    contains(errmsg(gam.save, path, {c = c}), 'c.again contains itself')
    contains(errmsg(gam.save, path, {[{}] = 1}), 'has a table key')
    local t = gam.ones(2)
    gam.release(t)
    contains(errmsg(gam.save, path, {w = t}), 'w is a released tensor')
    contains(errmsg(gam.save, path, nil), 'nothing to save')
    contains(errmsg(gam.save, '', {}), 'path must be')
    assert.are.same({}, listdir(dir))
  end)

  it('writes atomically: a failed save leaves the old file and no temporary file', function()
    local path = dir .. '/ck.gam'
    gam.save(path, {epoch = 1})
    local before = read(path)
    errmsg(gam.save, path, {epoch = 2, bad = print})
    assert.are.equal(before, read(path))
    -- the rename fails when the destination is a folder: the temporary file goes
    os.execute('mkdir ' .. dir .. '/sub')
    local msg = errmsg(gam.save, dir .. '/sub', {epoch = 3, w = gam.ones(1000)})
    contains(msg, dir .. '/sub')
    assert.are.same({'ck.gam', 'sub'}, listdir(dir))
    -- a missing folder is named
    contains(errmsg(gam.save, dir .. '/no/such/ck.gam', {}), dir .. '/no/such')
    -- a successful save replaces the file in one step
    gam.save(path, {epoch = 4})
    assert.are.equal(4, gam.load(path).epoch)
    assert.are.same({'ck.gam', 'sub'}, listdir(dir))
  end)

  describe('bad files', function()
    local good
    setup(function()
      local d = tmpdir()
      gam.save(d .. '/g.gam', {w = gam.randn({6, 7}), step = 12, name = 'x'})
      good = read(d .. '/g.gam')
      os.execute('rm -rf ' .. d)
    end)

    local function load_bytes(s)
      local path = dir .. '/bad.gam'
      write(path, s)
      local msg = errmsg(gam.load, path)
      contains(msg, path)
      return msg
    end

    it('a missing file or a folder', function()
      contains(errmsg(gam.load, dir .. '/none.gam'), dir .. '/none.gam: No such file')
      contains(errmsg(gam.load, dir), 'is a folder')
    end)

    it('a truncated file, at any length', function()
      for _, n in ipairs {#good - 1, #good - 4, #good - 100, 40, 24, 12} do
        local msg = load_bytes(good:sub(1, n))
        contains(msg, 'truncated')
      end
      contains(load_bytes(''), 'empty')
    end)

    it('a corrupt byte anywhere after the header', function()
      for _, pos in ipairs {17, 25, 30, 60, 200, #good - 6, #good} do
        local b = good:sub(1, pos - 1) .. string.char((good:byte(pos) + 1) % 256) .. good:sub(pos + 1)
        local msg = load_bytes(b)
        assert.is_truthy(msg:find('checksum mismatch', 1, true) or msg:find('truncated', 1, true)
                         or msg:find('unexpected bytes', 1, true), msg)
      end
      contains(load_bytes(good .. '\0'), 'unexpected bytes after the end')
    end)

    it('a foreign file', function()
      contains(load_bytes('\137PNG\r\n\26\n' .. string.rep('\0', 40)), 'not a gamlua checkpoint')
      contains(load_bytes('return {1, 2, 3}\n'), 'not a gamlua checkpoint')
      contains(load_bytes('GAML'), 'not a gamlua checkpoint')
    end)

    it('another format version', function()
      local msg = load_bytes(good:sub(1, 8) .. '\2\0\0\0' .. good:sub(13))
      contains(msg, 'version 2')
      contains(msg, 'reads version 1')
    end)

    it('a well-checksummed file with a bad payload', function()
      -- valid header and checksum around a tensor whose size disagrees with its shape
      local ffi = require 'ffi'
      local C = require 'gam.lib'
      local function u64(n) local b = ffi.new('uint64_t[1]', n) return ffi.string(b, 8) end
      local payload = '\6\0\1\0\0' .. u64(3) .. u64(8) .. string.rep('\0', 8)
      local head = 'GAMLUACK\1\0\0\0\0\0\0\0' .. u64(#payload)
      local body = head .. payload
      local crc = ffi.new('uint32_t[1]', C.gam_crc32(0, body, #body))
      contains(load_bytes(body .. ffi.string(crc, 4)), 'does not match its shape')
      payload = '\9'
      head = 'GAMLUACK\1\0\0\0\0\0\0\0' .. u64(#payload)
      body = head .. payload
      crc[0] = C.gam_crc32(0, body, #body)
      contains(load_bytes(body .. ffi.string(crc, 4)), 'unknown value tag 9')
    end)
  end)
end)
