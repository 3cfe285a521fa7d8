-- gam.data.datasets — CIFAR-10, CIFAR-100 and Fashion-MNIST (any MNIST-format
-- IDX pair) read by the engine into a Dataset: uint8 images [N,C,H,W] and
-- int64 labels [N] (0-based class ids), with the dataset's normalisation.
--
--   local train = gam.data.cifar{root = './data/CIFAR10', train = true}
--   local test  = gam.data.fashion_mnist{train = false}
--   train:size(), train.images, train.labels, train:slice(1, 1000)
local ffi = require 'ffi'
local C = require 'gam.lib'
local tensor = require 'gam.tensor'

local M = {}

-- Per-channel mean and std of the training images, values in [0, 1].
-- CIFAR: the GAM seed's constants. Fashion-MNIST: computed once over all
-- 60000 x 28 x 28 training pixels (mean 0.28604, population std 0.35302).
M.stats = {
  CIFAR10 = {mean = {0.4914, 0.4822, 0.4465}, std = {0.2470, 0.2435, 0.2616}},
  CIFAR100 = {mean = {0.5071, 0.4867, 0.4408}, std = {0.2675, 0.2565, 0.2761}},
  FashionMNIST = {mean = {0.2860}, std = {0.3530}},
}

M.FASHION_MNIST_SYSTEM_DIR = '/usr/share/datasets/fashion-mnist'

-- ---- the Dataset type ------------------------------------------------------------
local Dataset = {}
Dataset.__index = Dataset
M.Dataset = Dataset

local function is_dataset(v) return getmetatable(v) == Dataset end
M.is_dataset = is_dataset

--- M.new{name, images, labels, classes, mean, std, augment}: wraps tensors as a dataset
function M.new(o)
  local images, labels = o.images, o.labels
  tensor.T(images, 'dataset', 'images')
  tensor.T(labels, 'dataset', 'labels')
  if images:dtype() ~= 'uint8' or images:dim() ~= 4 then
    error(string.format('dataset: images must be uint8 [N,C,H,W], got %s %s', images:dtype(),
                        '[' .. table.concat(images:shape(), ',') .. ']'), 0)
  end
  if labels:dtype() ~= 'int64' or labels:dim() ~= 1 or labels:size(1) ~= images:size(1) then
    error(string.format('dataset: labels must be int64 [%d], got %s [%s]', images:size(1), labels:dtype(),
                        table.concat(labels:shape(), ',')), 0)
  end
  for d = 2, 4 do
    if images:size(d) < 1 then
      error(string.format('dataset: images are [%s]: channels, height and width must each be at least 1',
                          table.concat(images:shape(), ',')), 0)
    end
  end
  local c = images:size(2)
  local mean, std = o.mean, o.std
  if mean == nil then
    mean, std = {}, {}
    for i = 1, c do mean[i], std[i] = 0, 1 end
  end
  local self = setmetatable({
    name = o.name or 'dataset', images = tensor.keep(images), labels = tensor.keep(labels),
    classes = o.classes, mean = mean, std = std, augment = o.augment or {},
    channels = c, height = images:size(3), width = images:size(4),
  }, Dataset)
  return self
end

function Dataset:size() return self.images:size(1) end
Dataset.__len = Dataset.size

--- ds:slice(first, count): samples first .. first+count-1 (1-based), sharing storage
function Dataset:slice(first, count)
  local n = self:size()
  tensor.int_arg(first, 'slice', 'first', 1, n)
  tensor.int_arg(count, 'slice', 'count', 1)
  if first + count - 1 > n then count = n - first + 1 end
  return M.new {name = self.name, images = self.images:narrow(1, first, count),
                labels = self.labels:narrow(1, first, count), classes = self.classes,
                mean = self.mean, std = self.std, augment = self.augment}
end

--- ds:get(i): image i (uint8 [C,H,W]) and its label (a number), 1-based
function Dataset:get(i)
  tensor.int_arg(i, 'get', 'index', 1, self:size())
  return self.images:select(i), self.labels:select(i):item()
end

function Dataset:__tostring()
  return string.format('%s: %d images %dx%dx%d, %s classes', self.name, self:size(), self.channels,
                       self.height, self.width, tostring(self.classes))
end

-- ---- files -------------------------------------------------------------------------
local function exists(path)
  local f = io.open(path, 'rb')
  if f then f:close() return true end
  return false
end

-- first existing dir/name over dirs, or nil and the list of places looked at
local function find(dirs, names)
  local looked = {}
  for _, d in ipairs(dirs) do
    for _, n in ipairs(names) do
      local p = d .. '/' .. n
      if exists(p) then return p end
      looked[#looked + 1] = p
    end
  end
  return nil, looked
end

local outp, outp2 = tensor.outp, tensor.outp2

local function read_pair(fn, ...)
  tensor.check(fn(outp, outp2, ...))
  local images, labels = outp[0], outp2[0]
  return tensor.wrap(images), tensor.wrap(labels)
end

local function opts_table(o, op)
  if o == nil then return {} end
  if type(o) ~= 'table' then error(op .. ': options must be a table like {root = ..., train = true}', 0) end
  return o
end

local function train_flag(o, op)
  if o.train == nil then return true end
  if type(o.train) ~= 'boolean' then error(op .. ': train must be true or false', 0) end
  return o.train
end

-- ---- CIFAR -----------------------------------------------------------------------------
local CIFAR = {
  [10] = {folder = 'cifar-10-batches-bin', archive = 'cifar-10-binary.tar.gz', name = 'CIFAR10',
          title = 'CIFAR-10', train = {'data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin',
          'data_batch_4.bin', 'data_batch_5.bin'}, test = {'test_batch.bin'}},
  [100] = {folder = 'cifar-100-binary', archive = 'cifar-100-binary.tar.gz', name = 'CIFAR100',
           title = 'CIFAR-100', train = {'train.bin'}, test = {'test.bin'}},
}

--- gam.data.cifar{root, train = true, classes = 10 | 100, coarse = false}
-- root holds the extracted official binary archive (root/cifar-10-batches-bin/
-- or root/cifar-100-binary/), or is that folder itself. Default root:
-- ./data/CIFAR10 or ./data/CIFAR100.
function M.cifar(o)
  o = opts_table(o, 'cifar')
  local classes = o.classes or 10
  local spec = CIFAR[classes]
  if not spec then error('cifar: classes must be 10 or 100, got ' .. tostring(classes), 0) end
  local train = train_flag(o, 'cifar')
  if o.coarse and classes ~= 100 then error('cifar: coarse labels exist only in CIFAR-100 (classes = 100)', 0) end
  local root = o.root or ('./data/' .. spec.name)
  if type(root) ~= 'string' then error('cifar: root must be a folder path (a string)', 0) end
  local dirs = {root .. '/' .. spec.folder, root}
  local names = train and spec.train or spec.test
  local paths = {}
  for i, n in ipairs(names) do
    local p = find(dirs, {n})
    if not p then
      error(string.format("cifar: %s file %s not found: looked in %s and %s. Download the binary "
        .. "version of %s (%s, https://www.cs.toronto.edu/~kriz/%s) and extract it into %s, giving "
        .. "%s/%s/%s (tar xzf %s -C %s)", spec.title, n, dirs[1], dirs[2], spec.title, spec.archive,
        spec.archive, root, root, spec.folder, n, spec.archive, root), 0)
    end
    paths[i] = p
  end
  local arr = ffi.new('const char *[?]', #paths)
  for i, p in ipairs(paths) do arr[i - 1] = p end
  local images, labels = read_pair(C.gam_read_cifar, arr, #paths, classes, o.coarse and 1 or 0)
  local st = M.stats[spec.name]
  return M.new {name = spec.name .. (train and ' train' or ' test'), images = images, labels = labels,
                classes = o.coarse and 20 or classes, mean = st.mean, std = st.std,
                augment = {pad = 4, flip = true}}
end

-- ---- Fashion-MNIST and other IDX pairs ---------------------------------------------------
--- gam.data.idx{images = path, labels = path, classes = 10, name, mean, std}: an MNIST-format pair
function M.idx(o)
  o = opts_table(o, 'idx')
  for _, k in ipairs {'images', 'labels'} do
    if type(o[k]) ~= 'string' then error('idx: ' .. k .. ' must be a file path', 0) end
    if not exists(o[k]) then error(string.format('idx: %s file %s not found', k, o[k]), 0) end
  end
  local classes = o.classes or 10
  tensor.int_arg(classes, 'idx', 'classes', 1, 256)
  local images, labels = read_pair(C.gam_read_idx_dataset, o.images, o.labels, classes)
  return M.new {name = o.name or 'idx', images = images, labels = labels, classes = classes,
                mean = o.mean, std = o.std, augment = o.augment}
end

--- gam.data.fashion_mnist{root, train = true}
-- Looks for train-images-idx3-ubyte(.gz) etc. in root (and root/raw); without
-- root in ./data/FashionMNIST then /usr/share/datasets/fashion-mnist. The dataset's
-- root field names the folder the files were found in.
function M.fashion_mnist(o)
  o = opts_table(o, 'fashion_mnist')
  local train = train_flag(o, 'fashion_mnist')
  local dirs
  if o.root ~= nil then
    if type(o.root) ~= 'string' then error('fashion_mnist: root must be a folder path (a string)', 0) end
    dirs = {o.root, o.root .. '/raw'}
  else
    dirs = {'./data/FashionMNIST', './data/FashionMNIST/raw', M.FASHION_MNIST_SYSTEM_DIR}
  end
  local prefix = train and 'train' or 't10k'
  local found = {}
  for _, kind in ipairs {'images-idx3-ubyte', 'labels-idx1-ubyte'} do
    local base = prefix .. '-' .. kind
    local p, looked = find(dirs, {base .. '.gz', base})
    if not p then
      error(string.format('fashion_mnist: %s(.gz) not found; looked for %s. Install Debian\'s '
                          .. 'dataset-fashion-mnist package (files in %s) or pass root = the folder '
                          .. 'holding the four IDX files', base, table.concat(looked, ', '),
                          M.FASHION_MNIST_SYSTEM_DIR), 0)
    end
    found[#found + 1] = p
  end
  local st = M.stats.FashionMNIST
  local ds = M.idx {images = found[1], labels = found[2], classes = 10,
                    name = 'FashionMNIST' .. (train and ' train' or ' test'), mean = st.mean, std = st.std,
                    augment = {flip = true}}
  ds.root = found[1]:match('^(.*)/[^/]*$') or '.'   -- the folder the files were found in
  return ds
end

return M
