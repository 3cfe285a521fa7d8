-- gam.data.loader — batches of a dataset, prepared on a background thread.
--
--   local loader = gam.data.loader{dataset = train, batch_size = 128, shuffle = true,
--                                  augment = true, seed = 0, drop_last = false}
--   for epoch = 1, 3 do
--     for x, y in loader:epoch(epoch) do   -- x float32 [B,C,H,W], y int64 [B]
--       ...
--     end
--   end
--
-- Each `for` loop over the loader is one pass (one epoch). The order of epoch
-- e is a permutation drawn from (seed, e), the augmentation of batch k from
-- (seed, e, k): the batches are the same on every run whatever the thread
-- timing. loader:epoch(e) chooses the epoch of the next pass; without it,
-- passes count up from 1.
--
-- Data-parallel: rank = r, world_size = N give rank r its share of every
-- epoch (DistributedSampler: the same order on every rank, strided; padded by
-- repeating, or cut with drop_remainder = true); rank r > 0 draws its own
-- reproducible augmentation stream.
--
-- Memory: a batch lives until the loop asks for the next one (or the pass
-- ends); then the loader releases it. Keep a copy with x:clone() if needed.
-- The worker thread is joined when a pass ends, when the next pass starts
-- (after a `break`), on loader:close(), and when the loader is collected.
local ffi = require 'ffi'
local C = require 'gam.lib'
local tensor = require 'gam.tensor'
local augment = require 'gam.data.augment'

local Loader = {}
Loader.__index = Loader

local M = {}

local KNOWN = {dataset = true, batch_size = true, shuffle = true, augment = true, seed = true,
               drop_last = true, prefetch = true, device = true, rank = true, world_size = true,
               drop_remainder = true}

local function flag(v, name, default)
  if v == nil then return default end
  if type(v) ~= 'boolean' then
    error(string.format('loader: %s must be true or false, got %s', name, tostring(v)), 0)
  end
  return v
end

--- gam.data.loader{dataset, batch_size = 1, shuffle = false, augment = false,
---                 seed = 0, drop_last = false, prefetch = 2, device = 'cpu'}
function M.new(o)
  if type(o) ~= 'table' then error('loader: expected a table of options {dataset = ..., batch_size = ...}', 0) end
  for k in pairs(o) do
    if not KNOWN[k] then error(string.format("loader: unknown option '%s'", tostring(k)), 0) end
  end
  local ds = o.dataset
  if type(ds) ~= 'table' or not ds.images or not ds.labels then
    error('loader: dataset must be a dataset (from gam.data.cifar, gam.data.fashion_mnist, ...), got '
          .. type(ds), 0)
  end
  local bs = o.batch_size or 1
  tensor.int_arg(bs, 'loader', 'batch_size', 1)
  local seed = o.seed or 0
  tensor.int_arg(seed, 'loader', 'seed', 0)
  local prefetch = o.prefetch or 2
  tensor.int_arg(prefetch, 'loader', 'prefetch', 1, 16)
  local device = o.device or 'cpu'
  if not tensor.DEVICES[device] then error("loader: unknown device '" .. tostring(device) .. "'", 0) end
  local shuffle, drop_last = flag(o.shuffle, 'shuffle', false), flag(o.drop_last, 'drop_last', false)
  local aug = augment.options(o.augment, ds, 'loader')
  local pp = ffi.new('gam_loader*[1]')
  tensor.check(C.gam_loader_new(pp, tensor.T(ds.images, 'loader', 'dataset images'),
                                tensor.T(ds.labels, 'loader', 'dataset labels'), bs, shuffle and 1 or 0,
                                drop_last and 1 or 0, aug, seed, prefetch))
  -- data-parallel share (PyTorch's DistributedSampler): rank r of world_size takes
  -- positions r, r + world_size, ... of the epoch's order, padded by repeating its start
  -- (drop_remainder = true: cut) to a multiple of world_size
  local rank, world = o.rank or 0, o.world_size or 1
  tensor.int_arg(world, 'loader', 'world_size', 1)
  tensor.int_arg(rank, 'loader', 'rank', 0, world - 1)
  if world > 1 then
    local ok, err = pcall(tensor.check, C.gam_loader_shard(pp[0], rank, world,
                                                           flag(o.drop_remainder, 'drop_remainder', false) and 1 or 0))
    if not ok then
      C.gam_loader_free(pp[0])
      error(err, 0)
    end
  end
  local self = setmetatable({
    rank = rank, world_size = world,
    dataset = ds, batch_size = bs, shuffle = shuffle, drop_last = drop_last, seed = seed,
    device = device, num_batches = tonumber(C.gam_loader_num_batches(pp[0])),
    ptr = ffi.gc(pp[0], C.gam_loader_free),
    next_epoch = 1,      -- epoch of the next pass
    current = nil,       -- epoch of the pass in progress
    batch = 0,           -- batches handed out in the pass in progress
  }, Loader)
  return self
end

function Loader:size() return self.num_batches end

local function live(self)
  if self.ptr == nil then error('loader: the loader is closed', 0) end
  return self.ptr
end

--- loader:epoch(e): the next pass is epoch e (its order and augmentation); returns the loader
function Loader:epoch(e)
  tensor.int_arg(e, 'loader:epoch', 'epoch', 0)
  self.next_epoch = e
  return self
end

local function drop_batch(self)
  if self.x then tensor.release(self.x) end
  if self.y then tensor.release(self.y) end
  self.x, self.y = nil, nil
end

--- loader:start(): begins a pass of epoch next_epoch (ending one in progress)
function Loader:start()
  local p = live(self)
  drop_batch(self)
  tensor.check(C.gam_loader_start(p, self.next_epoch))
  self.current, self.batch = self.next_epoch, 0
  self.next_epoch = self.next_epoch + 1
  return self
end

local outp, outp2 = tensor.outp, tensor.outp2

--- loader:next() -> x, y of the pass in progress (starting one if none), nil when it ends
function Loader:next()
  local p = live(self)
  if self.current == nil then self:start() end
  drop_batch(self)
  tensor.check(C.gam_loader_next(p, outp, outp2))
  if outp[0] == nil then
    self.current = nil
    return nil
  end
  local x, y = tensor.wrap(outp[0]), tensor.wrap(outp2[0])
  if self.device ~= 'cpu' then
    local dx, dy = x:to(self.device), y:to(self.device)
    tensor.release(x)
    tensor.release(y)
    x, y = dx, dy
  end
  self.x, self.y = x, y
  self.batch = self.batch + 1
  return x, y
end

-- `for x, y in loader do`: the generic for calls loader(nil, control); control
-- is nil on the first call of a loop, the previous x afterwards.
function Loader:__call(_, control)
  if control == nil then self:start() end
  return self:next()
end

--- loader:stop(): ends the pass in progress (joins the worker thread)
function Loader:stop()
  if self.ptr ~= nil then tensor.check(C.gam_loader_stop(self.ptr)) end
  drop_batch(self)
  self.current = nil
end

--- loader:close(): stops, frees the worker's buffers; the loader cannot be used afterwards
function Loader:close()
  if self.ptr == nil then return end
  drop_batch(self)
  local p = self.ptr
  self.ptr = nil
  ffi.gc(p, nil)
  C.gam_loader_free(p)
  self.current = nil
end

--- state for checkpoints: the seed and the epoch of the next pass
function Loader:state_dict() return {seed = self.seed, next_epoch = self.next_epoch} end

function Loader:load_state_dict(s)
  if type(s) ~= 'table' or type(s.next_epoch) ~= 'number' then
    error('loader:load_state_dict: expected the table from loader:state_dict()', 0)
  end
  if s.seed ~= self.seed then
    error(string.format('loader:load_state_dict: the state is of seed %s, this loader has seed %s',
                        tostring(s.seed), tostring(self.seed)), 0)
  end
  self:stop()
  self.next_epoch = s.next_epoch
end

function Loader:__tostring()
  return string.format('loader(%s, batch_size=%d, %d batches, shuffle=%s, seed=%d)', self.dataset.name,
                       self.batch_size, self.num_batches, tostring(self.shuffle), self.seed)
end

--- number of loader worker threads alive in the process (for tests)
function M.threads() return C.gam_loader_threads() end

return M
