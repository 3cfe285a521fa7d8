-- gam.data — datasets, augmentation and the background-thread loader.
--
--   local data = gam.data
--   local train = data.cifar{root = './data/CIFAR10', train = true, classes = 10}
--   local fm = data.fashion_mnist{train = false}
--   local loader = data.loader{dataset = train, batch_size = 128, shuffle = true,
--                              augment = true, seed = 0}
--   for x, y in loader do ... end
local datasets = require 'gam.data.datasets'
local augment = require 'gam.data.augment'
local loader = require 'gam.data.loader'

return {
  cifar = datasets.cifar,
  fashion_mnist = datasets.fashion_mnist,
  idx = datasets.idx,
  dataset = datasets.new,
  is_dataset = datasets.is_dataset,
  stats = datasets.stats,
  loader = loader.new,
  loader_threads = loader.threads,
  augment = augment.apply,
  FASHION_MNIST_SYSTEM_DIR = datasets.FASHION_MNIST_SYSTEM_DIR,
}
