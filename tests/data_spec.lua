-- Data: CIFAR and IDX readers on tiny files written here in the real formats,
-- every bad-input case, augmentation invariants, and the loader (determinism,
-- coverage, background thread shutdown, memory).
local gam = require 'gam'
local ffi = require 'ffi'

-- ---- helpers -------------------------------------------------------------------------
local here = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.'
local T = dofile(here .. '/helpers.lua')
local tmpdir, write, read, errmsg, contains = T.tmpdir, T.write, T.read, T.errmsg, T.contains

local function gzip(path) -- path -> path.gz, original removed
  assert(os.execute('gzip -n -f ' .. path) == 0 or true)
end

local function bytes(n, fn)
  local t = {}
  for j = 0, n - 1 do t[j + 1] = string.char(fn(j) % 256) end
  return table.concat(t)
end

local function be32(n)
  return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
                     math.floor(n / 256) % 256, n % 256)
end

-- a CIFAR record: label bytes then 3072 image bytes following a pattern of (k, r)
local function pixel(k, r, j) return (j * 7 + r * 13 + k * 31) % 256 end
local function cifar_record(labels, k, r)
  local s = {}
  for _, l in ipairs(labels) do s[#s + 1] = string.char(l) end
  s[#s + 1] = bytes(3072, function(j) return pixel(k, r, j) end)
  return table.concat(s)
end

local function values(t)
  local buf, n = t:data_copy()
  return buf, n
end

-- ---- CIFAR ---------------------------------------------------------------------------
describe('gam.data.cifar', function()
  local root
  local counts = {3, 2, 1, 2, 1}

  setup(function()
    root = tmpdir()
    os.execute('mkdir -p ' .. root .. '/c10/cifar-10-batches-bin ' .. root .. '/c100/cifar-100-binary')
    for k = 1, 5 do
      local recs = {}
      for r = 0, counts[k] - 1 do recs[#recs + 1] = cifar_record({(r + k) % 10}, k, r) end
      write(root .. '/c10/cifar-10-batches-bin/data_batch_' .. k .. '.bin', table.concat(recs))
    end
    write(root .. '/c10/cifar-10-batches-bin/test_batch.bin', cifar_record({9}, 7, 0) .. cifar_record({0}, 7, 1))
    local recs = {}
    for r = 0, 3 do recs[#recs + 1] = cifar_record({r * 5 % 20, 99 - r * 7}, 1, r) end
    write(root .. '/c100/cifar-100-binary/train.bin', table.concat(recs))
    write(root .. '/c100/cifar-100-binary/test.bin', cifar_record({19, 0}, 2, 0))
  end)

  teardown(function() os.execute('rm -rf ' .. root) end)

  it('reads the five CIFAR-10 training batches in order, channel-major', function()
    local ds = gam.data.cifar {root = root .. '/c10', train = true}
    assert.are.same({9, 3, 32, 32}, ds.images:shape())
    assert.are.equal('uint8', ds.images:dtype())
    assert.are.equal('int64', ds.labels:dtype())
    assert.are.equal(10, ds.classes)
    local expect_labels, i = {}, 0
    local img = values(ds.images)
    for k = 1, 5 do
      for r = 0, counts[k] - 1 do
        expect_labels[#expect_labels + 1] = (r + k) % 10
        for _, j in ipairs {0, 1, 1023, 1024, 2048, 3071} do
          assert.are.equal(pixel(k, r, j), img[i * 3072 + j])
        end
        i = i + 1
      end
    end
    assert.are.same(expect_labels, ds.labels:tolist())
    assert.are.same({0.4914, 0.4822, 0.4465}, ds.mean)
  end)

  it('reads the CIFAR-10 test batch, also from the extracted folder itself', function()
    local ds = gam.data.cifar {root = root .. '/c10/cifar-10-batches-bin', train = false}
    assert.are.equal(2, ds:size())
    assert.are.same({9, 0}, ds.labels:tolist())
  end)

  it('reads CIFAR-100 fine labels by default and coarse ones on request', function()
    local fine = gam.data.cifar {root = root .. '/c100', classes = 100}
    assert.are.same({99, 92, 85, 78}, fine.labels:tolist())
    assert.are.equal(100, fine.classes)
    local img = values(fine.images)
    assert.are.equal(pixel(1, 2, 5), img[2 * 3072 + 5])
    local coarse = gam.data.cifar {root = root .. '/c100', classes = 100, coarse = true}
    assert.are.same({0, 5, 10, 15}, coarse.labels:tolist())
    assert.are.equal(20, coarse.classes)
    local test = gam.data.cifar {root = root .. '/c100', classes = 100, train = false}
    assert.are.same({0}, test.labels:tolist())
    assert.are.same({0.5071, 0.4867, 0.4408}, test.mean)
  end)

  it('says where to put the official archive when a file is missing', function()
    local msg = errmsg(gam.data.cifar, {root = root .. '/nothing'})
    contains(msg, 'data_batch_1.bin')
    contains(msg, root .. '/nothing/cifar-10-batches-bin')
    contains(msg, 'cifar-10-binary.tar.gz')
    msg = errmsg(gam.data.cifar, {root = root .. '/nothing', classes = 100, train = false})
    contains(msg, 'test.bin')
    contains(msg, 'cifar-100-binary')
  end)

  it('rejects a truncated, empty, oversized or mislabelled batch naming the file', function()
    local d = root .. '/bad/cifar-10-batches-bin'
    os.execute('mkdir -p ' .. d)
    local good = read(root .. '/c10/cifar-10-batches-bin/test_batch.bin')
    write(d .. '/test_batch.bin', good:sub(1, #good - 1))
    local msg = errmsg(gam.data.cifar, {root = root .. '/bad', train = false})
    contains(msg, d .. '/test_batch.bin')
    contains(msg, 'not a whole number of 3073-byte')
    write(d .. '/test_batch.bin', good .. 'x')
    contains(errmsg(gam.data.cifar, {root = root .. '/bad', train = false}), 'truncated or not a CIFAR-10')
    write(d .. '/test_batch.bin', '')
    contains(errmsg(gam.data.cifar, {root = root .. '/bad', train = false}), 'is empty')
    write(d .. '/test_batch.bin', good .. cifar_record({10}, 0, 0))
    msg = errmsg(gam.data.cifar, {root = root .. '/bad', train = false})
    contains(msg, 'record 2 has label 10')
    contains(msg, d .. '/test_batch.bin')
    -- CIFAR-100: fine label 100, coarse label 20
    local d100 = root .. '/bad100/cifar-100-binary'
    os.execute('mkdir -p ' .. d100)
    write(d100 .. '/test.bin', cifar_record({3, 100}, 0, 0))
    contains(errmsg(gam.data.cifar, {root = root .. '/bad100', classes = 100, train = false}),
             'fine labels are 0..99')
    write(d100 .. '/test.bin', cifar_record({20, 1}, 0, 0))
    assert.are.equal(1, gam.data.cifar {root = root .. '/bad100', classes = 100, train = false}:size())
    contains(errmsg(gam.data.cifar, {root = root .. '/bad100', classes = 100, train = false, coarse = true}),
             'coarse labels are 0..19')
    -- a CIFAR-100 file read as CIFAR-10 does not divide into records
    os.execute('cp ' .. d100 .. '/test.bin ' .. d .. '/test_batch.bin')
    contains(errmsg(gam.data.cifar, {root = root .. '/bad', train = false}), '3073-byte')
  end)

  it('rejects bad options', function()
    contains(errmsg(gam.data.cifar, {root = root, classes = 11}), 'classes must be 10 or 100')
    contains(errmsg(gam.data.cifar, {root = root .. '/c10', coarse = true}), 'coarse labels exist only')
    contains(errmsg(gam.data.cifar, {root = 5}), 'root must be')
    contains(errmsg(gam.data.cifar, {root = root, train = 'yes'}), 'train must be true or false')
  end)
end)

-- ---- IDX / Fashion-MNIST ------------------------------------------------------------------
local function idx_images(n, h, w, fn)
  return '\0\0\8\3' .. be32(n) .. be32(h) .. be32(w) .. bytes(n * h * w, fn)
end
local function idx_labels(list)
  local s = {'\0\0\8\1', be32(#list)}
  for _, l in ipairs(list) do s[#s + 1] = string.char(l) end
  return table.concat(s)
end

describe('gam.data.fashion_mnist and IDX files', function()
  local root
  local function write_set(dir, prefix, n, gz, labels)
    os.execute('mkdir -p ' .. dir)
    local ip, lp = dir .. '/' .. prefix .. '-images-idx3-ubyte', dir .. '/' .. prefix .. '-labels-idx1-ubyte'
    write(ip, idx_images(n, 28, 28, function(j) return j * 3 + n end))
    local l = labels or {}
    if not labels then for i = 1, n do l[i] = (i * 3) % 10 end end
    write(lp, idx_labels(l))
    if gz then gzip(ip); gzip(lp) end
  end

  setup(function()
    root = tmpdir()
    write_set(root .. '/plain', 'train', 5, false)
    write_set(root .. '/plain', 't10k', 3, false)
    write_set(root .. '/gz', 'train', 4, true)
    write_set(root .. '/gz', 't10k', 2, true)
  end)
  teardown(function() os.execute('rm -rf ' .. root) end)

  it('reads plain IDX files into [N,1,H,W] uint8 and int64 labels', function()
    local ds = gam.data.fashion_mnist {root = root .. '/plain', train = true}
    assert.are.same({5, 1, 28, 28}, ds.images:shape())
    assert.are.same({3, 6, 9, 2, 5}, ds.labels:tolist())
    local img = values(ds.images)
    for _, j in ipairs {0, 1, 783, 784, 5 * 784 - 1} do assert.are.equal((j * 3 + 5) % 256, img[j]) end
    local test = gam.data.fashion_mnist {root = root .. '/plain', train = false}
    assert.are.equal(3, test:size())
    assert.are.same({0.2860}, test.mean)
    assert.are.equal(root .. '/plain', test.root)
  end)

  it('reads gzipped IDX files', function()
    local ds = gam.data.fashion_mnist {root = root .. '/gz'}
    assert.are.same({4, 1, 28, 28}, ds.images:shape())
    assert.are.same({3, 6, 9, 2}, ds.labels:tolist())
    assert.are.equal((783 * 3 + 4) % 256, values(ds.images)[783])
    assert.are.equal(root .. '/gz', ds.root)
    local raw = gam.data.idx {images = root .. '/gz/t10k-images-idx3-ubyte.gz',
                              labels = root .. '/gz/t10k-labels-idx1-ubyte.gz'}
    assert.are.equal(2, raw:size())
  end)

  it('names the missing file and every place it looked', function()
    local msg = errmsg(gam.data.fashion_mnist, {root = root .. '/none'})
    contains(msg, 'train-images-idx3-ubyte')
    contains(msg, root .. '/none/train-images-idx3-ubyte.gz')
    contains(msg, root .. '/none/raw/train-images-idx3-ubyte')
  end)

  local function bad_case(files, expect)
    local dir = tmpdir()
    for name, content in pairs(files) do write(dir .. '/' .. name, content) end
    local msg = errmsg(gam.data.fashion_mnist, {root = dir})
    for _, e in ipairs(expect) do contains(msg, (e:gsub('%$DIR', dir))) end
    os.execute('rm -rf ' .. dir)
  end

  local good_images = idx_images(3, 28, 28, function(j) return j end)
  local good_labels = idx_labels {1, 2, 3}

  it('rejects a bad magic number', function()
    bad_case({['train-images-idx3-ubyte'] = '\0\0\9\3' .. good_images:sub(5),
              ['train-labels-idx1-ubyte'] = good_labels},
             {'$DIR/train-images-idx3-ubyte', 'bad magic number 0x00000903'})
    bad_case({['train-images-idx3-ubyte'] = 'PK\3\4 not idx at all', ['train-labels-idx1-ubyte'] = good_labels},
             {'bad magic'})
  end)

  it('rejects truncated files and trailing bytes', function()
    bad_case({['train-images-idx3-ubyte'] = good_images:sub(1, -2), ['train-labels-idx1-ubyte'] = good_labels},
             {'$DIR/train-images-idx3-ubyte is truncated', 'promises 2352 data bytes, the file has 2351'})
    bad_case({['train-images-idx3-ubyte'] = good_images:sub(1, 10), ['train-labels-idx1-ubyte'] = good_labels},
             {'is truncated'})
    bad_case({['train-images-idx3-ubyte'] = good_images, ['train-labels-idx1-ubyte'] = good_labels .. 'zz'},
             {'$DIR/train-labels-idx1-ubyte', '2 bytes follow'})
    bad_case({['train-images-idx3-ubyte'] = '', ['train-labels-idx1-ubyte'] = good_labels}, {'truncated'})
  end)

  it('rejects labels out of range and count mismatches', function()
    bad_case({['train-images-idx3-ubyte'] = good_images, ['train-labels-idx1-ubyte'] = idx_labels {1, 10, 3}},
             {'$DIR/train-labels-idx1-ubyte', 'label 10 at index 1 is out of range 0..9'})
    bad_case({['train-images-idx3-ubyte'] = good_images, ['train-labels-idx1-ubyte'] = idx_labels {1, 2}},
             {'count mismatch', '3 images', '2 labels'})
    bad_case({['train-images-idx3-ubyte'] = good_labels, ['train-labels-idx1-ubyte'] = good_labels},
             {'expected [N,H,W]'})
  end)

  it('rejects corrupt and truncated gzip streams', function()
    local dir = tmpdir()
    write(dir .. '/train-images-idx3-ubyte', idx_images(20, 28, 28, function(j) return (j * j) % 251 end))
    write(dir .. '/train-labels-idx1-ubyte', good_labels)
    gzip(dir .. '/train-images-idx3-ubyte')
    local gz = read(dir .. '/train-images-idx3-ubyte.gz')
    -- cut short
    write(dir .. '/train-images-idx3-ubyte.gz', gz:sub(1, math.floor(#gz / 2)))
    local msg = errmsg(gam.data.fashion_mnist, {root = dir})
    contains(msg, dir .. '/train-images-idx3-ubyte.gz')
    contains(msg, 'gzip error')
    -- damaged deflate data (or its checksum)
    local mid = math.floor(#gz / 2)
    local bad = gz:sub(1, mid - 1) .. string.char((gz:byte(mid) + 77) % 256) .. gz:sub(mid + 1)
    write(dir .. '/train-images-idx3-ubyte.gz', bad)
    contains(errmsg(gam.data.fashion_mnist, {root = dir}), 'gzip error')
    -- damaged CRC trailer only
    bad = gz:sub(1, #gz - 8) .. string.char((gz:byte(#gz - 7) + 1) % 256) .. gz:sub(#gz - 6)
    write(dir .. '/train-images-idx3-ubyte.gz', bad)
    contains(errmsg(gam.data.fashion_mnist, {root = dir}), 'gzip error')
    os.execute('rm -rf ' .. dir)
  end)

  it('reads the real Fashion-MNIST, whose statistics are the constants used', function()
    local train = gam.data.fashion_mnist {root = gam.data.FASHION_MNIST_SYSTEM_DIR}
    local test = gam.data.fashion_mnist {root = gam.data.FASHION_MNIST_SYSTEM_DIR, train = false}
    assert.are.same({60000, 1, 28, 28}, train.images:shape())
    assert.are.equal(10000, test:size())
    local buf, n = values(train.images)
    local s, s2 = 0, 0
    local hist = {}
    for v = 0, 255 do hist[v] = 0 end
    for i = 0, n - 1 do local v = buf[i]; hist[v] = hist[v] + 1 end
    for v = 0, 255 do
      local x = v / 255
      s, s2 = s + hist[v] * x, s2 + hist[v] * x * x
    end
    local mean = s / n
    local std = math.sqrt(s2 / n - mean * mean)
    assert.is_true(math.abs(mean - train.mean[1]) < 1e-4, 'mean ' .. mean)
    assert.is_true(math.abs(std - train.std[1]) < 1e-4, 'std ' .. std)
    local counts = {}
    for _, l in ipairs(test.labels:tolist()) do counts[l] = (counts[l] or 0) + 1 end
    for c = 0, 9 do assert.are.equal(1000, counts[c]) end
  end)
end)

-- ---- augmentation ---------------------------------------------------------------------------
-- n images [n,c,h,w] with distinct pixel values
local function synthetic(n, c, h, w, fn)
  local buf = ffi.new('uint8_t[?]', n * c * h * w)
  for j = 0, n * c * h * w - 1 do buf[j] = (fn or function(k) return (k * 37 + 11) % 256 end)(j) end
  local images = gam.from_buffer(buf, {n, c, h, w}, 'uint8')
  local lab = ffi.new('int64_t[?]', n)
  for i = 0, n - 1 do lab[i] = i % 10 end
  local labels = gam.from_buffer(lab, {n}, 'int64')
  return gam.data.dataset {name = 'synthetic', images = images, labels = labels, classes = 10}
end

describe('augmentation', function()
  local ds = synthetic(64, 3, 8, 8)
  local src = values(ds.images)
  local C, H, W = 3, 8, 8
  local function at(buf, i, c, y, x) return buf[((i * C + c) * H + y) * W + x] end

  it('keeps shapes and labels', function()
    local x, y = gam.data.augment(ds, {pad = 2, flip = true, cutout = 3})
    assert.are.same({64, 3, 8, 8}, x:shape())
    assert.are.equal('float32', x:dtype())
    assert.are.same(ds.labels:tolist(), y:tolist())
  end)

  it('flip is a mirror image, and both outcomes occur', function()
    local x = values((gam.data.augment(ds, {flip = true, normalize = false})))
    local flipped, kept = 0, 0
    for i = 0, 63 do
      local same, mirror = true, true
      for c = 0, C - 1 do
        for yy = 0, H - 1 do
          for xx = 0, W - 1 do
            local v = at(x, i, c, yy, xx)
            if math.abs(v - at(src, i, c, yy, xx) / 255) > 1e-6 then same = false end
            if math.abs(v - at(src, i, c, yy, W - 1 - xx) / 255) > 1e-6 then mirror = false end
          end
        end
      end
      assert.is_true(same or mirror, 'sample ' .. i .. ' is neither the image nor its mirror')
      if mirror then flipped = flipped + 1 else kept = kept + 1 end
    end
    assert.is_true(flipped > 10 and kept > 10, flipped .. ' flipped, ' .. kept .. ' kept')
  end)

  it('crop is a window of the zero-padded image, at varying offsets', function()
    local pad = 2
    local x = values((gam.data.augment(ds, {pad = pad, normalize = false, seed = 3})))
    local function padded(i, c, yy, xx) -- the zero-padded image, coordinates in the canvas
      yy, xx = yy - pad, xx - pad
      if yy < 0 or yy >= H or xx < 0 or xx >= W then return 0 end
      return at(src, i, c, yy, xx) / 255
    end
    local offsets = {}
    for i = 0, 63 do
      local found
      for dy = 0, 2 * pad do
        for dx = 0, 2 * pad do
          local ok = true
          for c = 0, C - 1 do
            for yy = 0, H - 1 do
              for xx = 0, W - 1 do
                if math.abs(at(x, i, c, yy, xx) - padded(i, c, yy + dy, xx + dx)) > 1e-6 then ok = false break end
              end
              if not ok then break end
            end
            if not ok then break end
          end
          if ok then found = dy * 10 + dx break end
        end
        if found then break end
      end
      assert.is_not_nil(found, 'sample ' .. i .. ' is not a window of the padded image')
      offsets[found] = true
    end
    local distinct = 0
    for _ in pairs(offsets) do distinct = distinct + 1 end
    assert.is_true(distinct >= 10, distinct .. ' distinct offsets')
  end)

  it('normalises each channel with its mean and std', function()
    local mean, std = {0.1, 0.5, 0.9}, {0.2, 0.25, 0.5}
    local x = values((gam.data.augment(ds, {mean = mean, std = std})))
    for i = 0, 63, 7 do
      for c = 0, C - 1 do
        for yy = 0, H - 1, 3 do
          local expect = (at(src, i, c, yy, 1) / 255 - mean[c + 1]) / std[c + 1]
          assert.is_true(math.abs(at(x, i, c, yy, 1) - expect) < 1e-5)
        end
      end
    end
    -- with the data's own statistics the result has mean 0 and std 1 per channel
    local m, s = {}, {}
    for c = 0, C - 1 do
      local a, b, n = 0, 0, 0
      for i = 0, 63 do for yy = 0, H - 1 do for xx = 0, W - 1 do
        local v = at(src, i, c, yy, xx) / 255
        a, b, n = a + v, b + v * v, n + 1
      end end end
      m[c + 1] = a / n
      s[c + 1] = math.sqrt(b / n - m[c + 1] ^ 2)
    end
    local z = values((gam.data.augment(ds, {mean = m, std = s})))
    for c = 0, C - 1 do
      local a, b, n = 0, 0, 0
      for i = 0, 63 do for yy = 0, H - 1 do for xx = 0, W - 1 do
        local v = at(z, i, c, yy, xx)
        a, b, n = a + v, b + v * v, n + 1
      end end end
      assert.is_true(math.abs(a / n) < 1e-4, 'mean ' .. a / n)
      assert.is_true(math.abs(math.sqrt(b / n - (a / n) ^ 2) - 1) < 1e-4)
    end
  end)

  it('cutout zeroes one square of at most size x size pixels in every channel', function()
    local bright = synthetic(32, 3, 8, 8, function() return 200 end)
    local x = values((gam.data.augment(bright, {cutout = 4, normalize = false})))
    for i = 0, 31 do
      local zeros, ys, xs = 0, {}, {}
      for yy = 0, 7 do for xx = 0, 7 do
        local v0 = at(x, i, 0, yy, xx)
        for c = 1, 2 do assert.are.equal(v0, at(x, i, c, yy, xx)) end
        if v0 == 0 then zeros = zeros + 1; ys[yy] = true; xs[xx] = true end
      end end
      local ny, nx = 0, 0
      for _ in pairs(ys) do ny = ny + 1 end
      for _ in pairs(xs) do nx = nx + 1 end
      assert.is_true(zeros >= 4 and zeros <= 16 and zeros == ny * nx, 'sample ' .. i .. ': ' .. zeros)
    end
  end)

  it('is reproducible per seed', function()
    local a = gam.data.augment(ds, {pad = 2, flip = true, seed = 5})
    local b = gam.data.augment(ds, {pad = 2, flip = true, seed = 5})
    local c = gam.data.augment(ds, {pad = 2, flip = true, seed = 6})
    assert.is_true(a:allclose(b, 0, 0))
    assert.is_false(a:allclose(c, 0, 0))
  end)

  it('rejects bad options', function()
    contains(errmsg(gam.data.augment, ds, {mirror = true}), "unknown augmentation option 'mirror'")
    contains(errmsg(gam.data.augment, ds, {std = {1, 0, 1}}), 'std[2] = 0 must be > 0')
    contains(errmsg(gam.data.augment, ds, {mean = {1, 2}}), 'mean must be a number or a list of 3')
    contains(errmsg(gam.data.augment, ds, {pad = 9}), 'crop padding 9')
    contains(errmsg(gam.data.augment, ds, {pad = -1}), 'crop padding')
    contains(errmsg(gam.data.augment, ds, {flip = 1}), 'flip must be true or false')
  end)
end)

-- ---- the loader ---------------------------------------------------------------------------
-- sample i has every pixel = i, so x tells which samples a batch holds
local function indexed(n)
  return synthetic(n, 1, 4, 4, function(j) return math.floor(j / 16) end)
end

local function ids(x)
  local buf, n = values(x)
  local r = {}
  for b = 0, n / 16 - 1 do r[#r + 1] = math.floor(buf[b * 16] * 255 + 0.5) end
  return r
end

local function pass(loader, epoch)
  local seq = {}
  if epoch then loader:epoch(epoch) end
  for x, y in loader do
    local b = ids(x)
    local labels = y:tolist()
    for i, id in ipairs(b) do
      assert.are.equal(id % 10, labels[i])
      seq[#seq + 1] = id
    end
    seq[#seq + 1] = '|'
  end
  return table.concat(seq, ',')
end

pcall(ffi.cdef, 'int getpid(void);')
local function os_threads() -- threads of this process, as the kernel counts them
  local n = 0
  local p = io.popen('ls /proc/' .. ffi.C.getpid() .. '/task 2>/dev/null')
  if not p then return nil end
  for _ in p:lines() do n = n + 1 end
  p:close()
  return n > 0 and n or nil
end

describe('gam.data.loader', function()
  local ds = indexed(50)

  it('covers every sample once per epoch, in batches of batch_size', function()
    local l = gam.data.loader {dataset = ds, batch_size = 8, shuffle = true, seed = 1}
    assert.are.equal(7, l:size())
    local seen, sizes = {}, {}
    for x, y in l do
      sizes[#sizes + 1] = x:size(1)
      assert.are.same({x:size(1), 1, 4, 4}, x:shape())
      assert.are.equal(x:size(1), y:size(1))
      for _, id in ipairs(ids(x)) do
        assert.is_nil(seen[id])
        seen[id] = true
      end
    end
    assert.are.same({8, 8, 8, 8, 8, 8, 2}, sizes)
    for i = 0, 49 do assert.is_true(seen[i]) end
    local d = gam.data.loader {dataset = ds, batch_size = 8, drop_last = true}
    assert.are.equal(6, d:size())
    local n = 0
    for x in d do n = n + 1; assert.are.equal(8, x:size(1)) end
    assert.are.equal(6, n)
    assert.are.equal('0,1,2,3,4,5,6,7,|', pass(gam.data.loader {dataset = ds:slice(1, 8), batch_size = 16}):sub(1, 17))
  end)

  it('is deterministic per seed and epoch, whatever the timing', function()
    local a = gam.data.loader {dataset = ds, batch_size = 7, shuffle = true, seed = 42, augment = {flip = true}}
    local b = gam.data.loader {dataset = ds, batch_size = 7, shuffle = true, seed = 42, prefetch = 1,
                               augment = {flip = true}}
    local c = gam.data.loader {dataset = ds, batch_size = 7, shuffle = true, seed = 43}
    local a1, a2 = pass(a), pass(a)
    -- b is consumed slowly, so its worker runs ahead and waits
    local slow = {}
    for x in b do
      local t = os.clock()
      while os.clock() - t < 0.002 do end
      for _, id in ipairs(ids(x)) do slow[#slow + 1] = id end
      slow[#slow + 1] = '|'
    end
    assert.are.equal(a1, table.concat(slow, ','))
    assert.are_not.equal(a1, a2)                 -- epochs 1 and 2 differ
    assert.are.equal(a2, pass(b))                 -- b's second pass is epoch 2 too
    assert.are_not.equal(a1, pass(c, 1))          -- another seed, another order
    assert.are.equal(a1, pass(a, 1))              -- loader:epoch(1) replays epoch 1
    -- augmentation is part of the determinism
    local function batch1(l, e)
      l:epoch(e)
      return l():clone()   -- the pass's first batch (what `for x in l` yields first)
    end
    local xa, xb = batch1(a, 3), batch1(b, 3)
    assert.is_true(xa:allclose(xb, 0, 0))
    a:close(); b:close(); c:close()
  end)

  it('without shuffle yields the dataset order', function()
    local l = gam.data.loader {dataset = ds:slice(11, 10), batch_size = 4}
    assert.are.equal('10,11,12,13,|,14,15,16,17,|,18,19,|', pass(l))
  end)

  it('joins its thread at the end of a pass, on break, close and collection', function()
    local base = gam.data.loader_threads()
    local tasks0 = os_threads()
    local l = gam.data.loader {dataset = ds, batch_size = 2, shuffle = true}
    for _ in l do end
    assert.are.equal(base, gam.data.loader_threads())
    for _ = 1, 200 do      -- break early, many times
      for x in l do
        if x then break end
      end
      assert.is_true(gam.data.loader_threads() <= base + 1)
    end
    l:stop()
    assert.are.equal(base, gam.data.loader_threads())
    l()   -- start a pass, take one batch and stop there (as `for x in l do break end`)
    assert.are.equal(base + 1, gam.data.loader_threads())   -- parked after the break
    if tasks0 then assert.are.equal(tasks0 + 1, os_threads()) end
    l:close()
    assert.are.equal(base, gam.data.loader_threads())
    contains(errmsg(function() for _ in l do end end), 'closed')
    -- loaders dropped mid-pass are joined by the collector
    for _ = 1, 20 do
      local tmp = gam.data.loader {dataset = ds, batch_size = 3, shuffle = true}
      tmp()   -- one batch of a new pass, then dropped mid-pass
    end
    collectgarbage(); collectgarbage()
    assert.are.equal(base, gam.data.loader_threads())
    if tasks0 then assert.are.equal(tasks0, os_threads()) end
  end)

  it('frees each batch: memory stays flat over passes and early breaks', function()
    local l = gam.data.loader {dataset = ds, batch_size = 5, shuffle = true, augment = {flip = true}}
    for _ in l do end
    collectgarbage(); collectgarbage()
    local m0 = gam.memory()
    local peak = 0
    gam.scope(function()
      for _ = 1, 30 do
        for x, y in l do
          gam.scope(function() return (x * 2):sum():item() + y:float():sum():item() end)
          peak = math.max(peak, gam.memory().live_tensors - m0.live_tensors)
        end
        for x in l do if x then break end end
      end
    end)
    l:stop()
    collectgarbage(); collectgarbage()
    local m1 = gam.memory()
    assert.are.equal(m0.live_tensors, m1.live_tensors)
    assert.are.equal(m0.live_bytes, m1.live_bytes)
    assert.is_true(peak <= 10, 'peak live tensors ' .. peak)
  end)

  it('uses the dataset augmentation with augment = true', function()
    local img = synthetic(16, 3, 8, 8)
    img.augment = {pad = 4, flip = true}
    local plain = gam.data.loader {dataset = img, batch_size = 16, augment = false}
    local aug = gam.data.loader {dataset = img, batch_size = 16, augment = true}
    local x0 = plain:next():clone()
    local x1 = aug:next()
    assert.are.same(x0:shape(), x1:shape())
    assert.is_false(x0:allclose(x1, 1e-3, 1e-3))
    plain:close(); aug:close()
  end)

  it('saves and restores its position', function()
    local l = gam.data.loader {dataset = ds, batch_size = 9, shuffle = true, seed = 7}
    pass(l); pass(l)
    local st = l:state_dict()
    local third = pass(l)
    local m = gam.data.loader {dataset = ds, batch_size = 9, shuffle = true, seed = 7}
    m:load_state_dict(st)
    assert.are.equal(third, pass(m))
    contains(errmsg(m.load_state_dict, m, {seed = 8, next_epoch = 1}), 'seed')
  end)

  it('rejects bad options', function()
    contains(errmsg(gam.data.loader, {dataset = ds, batch_size = 0}), 'batch_size')
    contains(errmsg(gam.data.loader, {dataset = ds, batch_size = 1.5}), 'batch_size must be an integer')
    contains(errmsg(gam.data.loader, {dataset = 'x'}), 'dataset must be a dataset')
    contains(errmsg(gam.data.loader, {dataset = ds, shufle = true}), "unknown option 'shufle'")
    contains(errmsg(gam.data.loader, {dataset = ds, shuffle = 1}), 'shuffle must be true or false')
    contains(errmsg(gam.data.loader, {dataset = ds, batch_size = 64, drop_last = true}), 'leaves no batch')
    contains(errmsg(gam.data.loader, {dataset = ds, seed = -1}), 'seed')
    contains(errmsg(gam.data.loader, nil), 'expected a table')
  end)
end)
