-- gam.data.loader{rank =, world_size =}: PyTorch DistributedSampler semantics,
-- checked in one process by building every rank's loader side by side.
local ffi = require 'ffi'
local gam = require 'gam'

-- n samples whose label is their index; image k of every sample is the same
-- asymmetric pattern (so augmentation is the only difference between samples)
local function indexed(n)
  local c, h, w = 1, 6, 6
  local buf = ffi.new('uint8_t[?]', n * c * h * w)
  for j = 0, n * c * h * w - 1 do buf[j] = (j % (c * h * w)) * 7 % 256 end
  local lab = ffi.new('int64_t[?]', n)
  for i = 0, n - 1 do lab[i] = i end
  return gam.data.dataset {name = 'indexed', images = gam.from_buffer(buf, {n, c, h, w}, 'uint8'),
                           labels = gam.from_buffer(lab, {n}, 'int64'), classes = n}
end

-- the labels (sample indices) of one pass, and its batch sizes
local function pass(loader, epoch)
  local ids, sizes = {}, {}
  for _, y in loader:epoch(epoch) do
    sizes[#sizes + 1] = y:size(1)
    for _, v in ipairs(y:tolist()) do ids[#ids + 1] = v end
  end
  return ids, sizes
end

describe('loader sharding (DistributedSampler)', function()
  local ds = indexed(10)

  for _, drop in ipairs {false, true} do
    it('every rank takes its strided share of the same order' .. (drop and ' (drop_remainder)' or ' (padded)'),
       function()
      local full = pass(gam.data.loader {dataset = ds, batch_size = 4, shuffle = true, seed = 5}, 3)
      local world = 3
      -- PyTorch: pad by repeating the start (or cut) to a multiple of world, then indices[r::world]
      local total = drop and math.floor(#full / world) * world or math.ceil(#full / world) * world
      local padded = {}
      for i = 1, total do padded[i] = full[(i - 1) % #full + 1] end
      local seen = {}
      for r = 0, world - 1 do
        local l = gam.data.loader {dataset = ds, batch_size = 4, shuffle = true, seed = 5, rank = r,
                                   world_size = world, drop_remainder = drop}
        local want = {}
        for i = r + 1, total, world do want[#want + 1] = padded[i] end
        local got = pass(l, 3)
        assert.are.same(want, got)
        assert.are.equal(#want, #got)
        assert.are.equal(math.ceil(#want / 4), l:size())
        for _, v in ipairs(got) do seen[v] = (seen[v] or 0) + 1 end
        l:close()
      end
      local distinct = 0
      for _ in pairs(seen) do distinct = distinct + 1 end
      assert.are.equal(drop and 9 or 10, distinct)
    end)
  end

  it('another epoch is another order, the same on every rank', function()
    local a = pass(gam.data.loader {dataset = ds, batch_size = 10, shuffle = true, seed = 5, rank = 1,
                                    world_size = 2}, 1)
    local b = pass(gam.data.loader {dataset = ds, batch_size = 10, shuffle = true, seed = 5, rank = 1,
                                    world_size = 2}, 2)
    local full2 = pass(gam.data.loader {dataset = ds, batch_size = 10, shuffle = true, seed = 5}, 2)
    assert.are_not.same(a, b)
    assert.are.same({full2[2], full2[4], full2[6], full2[8], full2[10]}, b)
  end)

  it('drop_last applies to each rank\'s batches', function()
    local l = gam.data.loader {dataset = ds, batch_size = 3, rank = 0, world_size = 2, drop_last = true}
    local ids, sizes = pass(l, 1)
    assert.are.same({3}, sizes)
    assert.are.same({0, 2, 4}, ids)
  end)

  it('each rank has its own reproducible augmentation stream', function()
    local function first_batch(rank)
      local l = gam.data.loader {dataset = ds, batch_size = 5, seed = 9, rank = rank, world_size = 2,
                                 augment = {pad = 2, flip = true}}
      local x = l:epoch(1):next():clone()
      l:close()
      return x
    end
    local a0, a1, b0 = first_batch(0), first_batch(1), first_batch(0)
    assert.are.equal(0, (a0 - b0):abs():max():item())
    assert.is_true((a0 - a1):abs():max():item() > 0)
  end)

  it('rejects bad shares', function()
    assert.has_error(function() gam.data.loader {dataset = ds, rank = 2, world_size = 2} end,
                     'loader: rank = 2 is out of range [0, 1]')
    assert.has_error(function() gam.data.loader {dataset = ds, rank = 0, world_size = 0} end)
    assert.has_error(function() gam.data.loader {dataset = ds, rank = 0, world_size = 11, drop_remainder = true} end,
                     'loader: 10 samples leave nothing for each of 11 ranks')
  end)
end)
