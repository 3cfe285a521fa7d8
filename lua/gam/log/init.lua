-- gam.log — training logs in the formats other tools read.
--
--   gam.log.tensorboard(dir)   TensorBoard event files (gam/log/tensorboard.lua)
local M = {}
M.tensorboard = function(...) return require('gam.log.tensorboard')(...) end
return M
