-- gam.log.tensorboard — TensorBoard event files written from Lua, the format
-- PyTorch's SummaryWriter writes (no TensorFlow, no protobuf library):
--
--   local tb = gam.log.tensorboard('runs/x')   -- runs/x/events.out.tfevents.<time>.<host>.<pid>.<n>
--   tb:scalar('train/loss', 0.52, step)
--   tb:histogram('weights/fc', w, step)         -- a tensor (any device) or a list of numbers
--   tb:text('flags', '| flag | value |\n|---|---|\n| lr | 0.1 |', step)  -- markdown
--   tb:flush(); tb:close()
--
-- Each call appends one record (tfrecord.lua: length, masked CRC-32C, Event
-- protobuf, masked CRC-32C) and, by default, flushes it, so a TensorBoard
-- pointed at the folder follows a running job; {flush = false} leaves the
-- flushing to :flush() and :close(). The file is an append-only log, not
-- rewritten atomically: a crash can cut its last record, which TensorBoard
-- detects by the CRCs, reading every record before it.
--
-- Messages (tensorflow/core/util/event.proto, framework/summary.proto):
--   Event   {1 wall_time double, 2 step int64, 3 file_version string, 5 summary Summary}
--   Summary {1 value repeated Value}
--   Value   {1 tag, 2 simple_value float, 5 histo HistogramProto, 8 tensor TensorProto,
--            9 metadata SummaryMetadata}
--   HistogramProto {1 min, 2 max, 3 num, 4 sum, 5 sum_squares, 6 bucket_limit, 7 bucket}
--   SummaryMetadata {1 plugin_data {1 plugin_name}}; TensorProto {1 dtype, 2 tensor_shape, 8 string_val}
local ffi = require 'ffi'
local pb = require 'gam.log.protobuf'
local tfrecord = require 'gam.log.tfrecord'

pcall(ffi.cdef, [[
int gethostname(char *name, size_t len);
int getpid(void);
typedef struct { long tv_sec; long tv_usec; } gam_tb_timeval;
int gettimeofday(gam_tb_timeval *tv, void *tz);
]])

local Writer = {}
Writer.__index = Writer
Writer.__typename = 'gam.log.tensorboard'

local tv = ffi.new('gam_tb_timeval')
local function wall_time()
  ffi.C.gettimeofday(tv, nil)
  return tonumber(tv.tv_sec) + tonumber(tv.tv_usec) * 1e-6
end

local function hostname()
  local buf = ffi.new('char[256]')
  if ffi.C.gethostname(buf, 255) ~= 0 then return 'localhost' end
  local h = ffi.string(buf):gsub('[^%w%.%-_]', '_')
  return h ~= '' and h or 'localhost'
end

local counter = 0

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function checked(who, tag, step)
  if type(tag) ~= 'string' or tag == '' then
    error(string.format('tensorboard:%s: tag must be a non-empty string, got %s', who, tostring(tag)), 3)
  end
  if type(step) ~= 'number' or step < 0 or step ~= math.floor(step) or step >= 2 ^ 53 then
    error(string.format("tensorboard:%s('%s'): step must be an integer >= 0, got %s", who, tag, tostring(step)), 3)
  end
end

--- gam.log.tensorboard(dir [, options]): a writer appending to a new event file in dir
-- (made if missing). options: flush = true (flush after every record).
local function new(dir, options)
  if type(dir) ~= 'string' or dir == '' then
    error('gam.log.tensorboard: dir must be a folder name, got ' .. tostring(dir), 2)
  end
  options = options or {}
  if type(options) ~= 'table' then error('gam.log.tensorboard: options must be a table', 2) end
  for k in pairs(options) do
    if k ~= 'flush' then error("gam.log.tensorboard: unknown option '" .. tostring(k) .. "'", 2) end
  end
  os.execute('mkdir -p ' .. shell_quote(dir) .. ' 2>/dev/null')
  counter = counter + 1
  local t = wall_time()
  local path = string.format('%s/events.out.tfevents.%d.%s.%d.%d', dir, math.floor(t), hostname(),
                             ffi.C.getpid(), counter)
  local f, err = io.open(path, 'ab')
  if not f then error('gam.log.tensorboard: cannot open ' .. path .. ': ' .. tostring(err), 2) end
  local self = setmetatable({path = path, file = f, autoflush = options.flush ~= false}, Writer)
  self:_event(pb.double(1, t) .. pb.string(3, 'brain.Event:2'))
  return self
end

-- appends one Event record (its fields after wall_time)
function Writer:_event(fields)
  if not self.file then error('tensorboard: the writer of ' .. self.path .. ' is closed', 3) end
  local ok, err = self.file:write(tfrecord.frame(fields))
  if not ok then error('tensorboard: cannot write ' .. self.path .. ': ' .. tostring(err), 3) end
  if self.autoflush then self.file:flush() end
end

local function summary_event(step, value)
  return pb.double(1, wall_time()) .. pb.uint(2, step) .. pb.message(5, pb.message(1, value))
end

--- writer:scalar(tag, value, step): one point of a scalar chart (stored as float32)
function Writer:scalar(tag, value, step)
  checked('scalar', tag, step)
  if type(value) ~= 'number' then
    error(string.format("tensorboard:scalar('%s'): value must be a number, got %s", tag, type(value)), 2)
  end
  self:_event(summary_event(step, pb.string(1, tag) .. pb.float(2, value)))
end

-- the numbers of a tensor or a list, as (cdata or table, n)
local function numbers(tag, x)
  if type(x) == 'table' then return x, #x, 1 end
  local tensor = require 'gam.tensor'
  if tensor.is_tensor(x) then
    local buf, n = x:data_copy()
    return buf, n, 0
  end
  error(string.format("tensorboard:histogram('%s'): values must be a tensor or a list of numbers, got %s",
                      tag, type(x)), 3)
end

--- writer:histogram(tag, values, step [, bins]): the distribution of a tensor's values
-- (or a list of numbers) in `bins` equal-width buckets (30) from min to max; non-finite
-- values are left out.
function Writer:histogram(tag, values, step, bins)
  checked('histogram', tag, step)
  bins = bins or 30
  if type(bins) ~= 'number' or bins < 1 or bins ~= math.floor(bins) then
    error(string.format("tensorboard:histogram('%s'): bins must be a positive integer", tag), 2)
  end
  local v, n, base = numbers(tag, values)
  local lo, hi, num, sum, sq = math.huge, -math.huge, 0, 0, 0
  for i = base, n - 1 + base do
    local x = tonumber(v[i])
    if x == x and x ~= math.huge and x ~= -math.huge then
      if x < lo then lo = x end
      if x > hi then hi = x end
      num, sum, sq = num + 1, sum + x, sq + x * x
    end
  end
  local limits, counts = {}, {}
  if num == 0 then
    lo, hi = 0, 0
  else
    local width = (hi - lo) / bins
    if width == 0 then bins, width = 1, 1 end
    for b = 1, bins do limits[b], counts[b] = lo + width * b, 0 end
    limits[bins] = hi
    for i = base, n - 1 + base do
      local x = tonumber(v[i])
      if x == x and x ~= math.huge and x ~= -math.huge then
        local b = math.min(bins, math.max(1, math.ceil((x - lo) / width)))
        counts[b] = counts[b] + 1
      end
    end
  end
  local histo = pb.double(1, lo) .. pb.double(2, hi) .. pb.double(3, num) .. pb.double(4, sum) ..
                pb.double(5, sq) .. pb.packed_doubles(6, limits) .. pb.packed_doubles(7, counts)
  self:_event(summary_event(step, pb.string(1, tag) .. pb.message(5, histo)))
end

local TEXT_METADATA = pb.message(1, pb.string(1, 'text'))   -- SummaryMetadata{plugin_data{plugin_name}}
local DT_STRING = 7

--- writer:text(tag, s, step): a text entry (rendered as markdown by TensorBoard)
function Writer:text(tag, s, step)
  checked('text', tag, step)
  if type(s) ~= 'string' then
    error(string.format("tensorboard:text('%s'): text must be a string, got %s", tag, type(s)), 2)
  end
  local tensor = pb.uint(1, DT_STRING) .. pb.message(2, '') .. pb.string(8, s)
  self:_event(summary_event(step, pb.string(1, tag) .. pb.message(9, TEXT_METADATA) .. pb.message(8, tensor)))
end

--- writer:flush(): writes out what is buffered
function Writer:flush()
  if self.file then self.file:flush() end
end

--- writer:close(): flushes and closes the file (a second close does nothing)
function Writer:close()
  if self.file then
    self.file:close()
    self.file = nil
  end
end

return new
