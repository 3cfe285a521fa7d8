-- Prints the CUDA stack before the GPU tests (tests/cuda/run_cuda.sh): the
-- driver, runtime and cuDNN versions and the GPU's name. Exits 1, saying why,
-- when libgam has no CUDA backend, no device is visible or the driver is too
-- old for the runtime (CUDA 13 needs an R580 or newer driver).
--   gamlua tests/cuda/versions.lua [nvidia-smi driver version]
local gam = require 'gam'

local smi = arg and arg[1] or ''
local info, why = gam.cuda_info()
if not info then
  print('cuda: ' .. why)
  os.exit(1)
end
print(string.format('cuda: driver %s (supports CUDA %s), runtime %s, cuDNN %s (built against %s)',
                    smi ~= '' and smi or 'version unknown (no nvidia-smi)', info.driver, info.runtime,
                    info.cudnn, info.cudnn_compiled))
local ok = true
if info.runtime_number >= 13000 then
  local major = tonumber(smi:match('^(%d+)'))
  if major and major < 580 then
    print(string.format('cuda: driver %s is too old for CUDA %s: CUDA 13 needs an R580 or newer driver', smi,
                        info.runtime))
    ok = false
  end
end
if info.driver_number > 0 and info.driver_number < info.runtime_number then
  print(string.format('cuda: the driver supports CUDA up to %s, older than the runtime %s: update the driver%s',
                      info.driver, info.runtime, info.runtime_number >= 13000 and ' (R580 or newer for CUDA 13)' or ''))
  ok = false
end
if info.devices == 0 then
  print('cuda: no GPU is visible (CUDA_VISIBLE_DEVICES=' .. tostring(os.getenv('CUDA_VISIBLE_DEVICES')) .. ')')
  ok = false
else
  print(string.format('cuda: %d device(s); device 0: %s, compute capability %s, %.1f GiB', info.devices,
                      info.name, info.capability, info.memory_bytes / 2 ^ 30))
end
os.exit(ok and 0 or 1)
