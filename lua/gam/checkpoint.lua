-- gam.checkpoint — gam.save(path, value) and gam.load(path, {device = ...}).
--
-- A value is a number, string, boolean, tensor, or a table of them, nested to
-- any depth (keys: strings, numbers, booleans). Tensors keep dtype, shape and
-- requires_grad and load onto the cpu unless {device = ...} says otherwise.
-- A table met twice is written twice; a table that contains itself is an error.
--
-- File format, version 1 (all integers little-endian):
--
--   offset   size  field
--   0        8     magic "GAMLUACK"
--   8        4     uint32 format version = 1
--   12       4     uint32 flags = 0 (reserved)
--   16       8     uint64 payload length P
--   24       P     payload: one encoded value
--   24+P     4     uint32 CRC-32 (zlib polynomial) of bytes 0 .. 24+P-1
--
--   value := tag:uint8 body
--     0x01 false                 (no body)
--     0x02 true                  (no body)
--     0x03 number                float64
--     0x04 string                uint64 length, the bytes
--     0x05 table                 uint64 n, then n (key value, value value) pairs,
--                                numbers first (ascending), then strings (sorted), then false, true
--     0x06 tensor                uint8 dtype (0 float32, 1 int64, 2 uint8), uint8 ndim (0..8),
--                                uint8 requires_grad (0|1), uint8 reserved = 0,
--                                ndim x int64 sizes, uint64 data bytes,
--                                the elements in row-major order
--
-- Files are written atomically (engine/checkpoint.c: temporary file in the same
-- folder, fsync, rename): after a failed or interrupted save the previous file,
-- if any, is intact; a failed save removes its temporary file, and the next
-- save (or clean_temps) removes the ones of saves killed midway. gam.load checks the magic, the
-- version, the length and the checksum before decoding, so a truncated,
-- corrupt or foreign file is a clear error naming the path.
local ffi = require 'ffi'
local C = require 'gam.lib'
local tensor = require 'gam.tensor'

local M = {}

M.MAGIC = 'GAMLUACK'
M.VERSION = 1
local HEADER = 24
local TRAILER = 4
local T_FALSE, T_TRUE, T_NUMBER, T_STRING, T_TABLE, T_TENSOR = 1, 2, 3, 4, 5, 6
local MAX_DEPTH = 200
local ESIZE = {[0] = 4, [1] = 8, [2] = 1}

if not ffi.abi('le') then error('gam.checkpoint: only little-endian machines are supported', 0) end

local u64 = ffi.new('uint64_t[1]')
local u32 = ffi.new('uint32_t[1]')
local f64 = ffi.new('double[1]')
local function enc_u64(n) u64[0] = n; return ffi.string(u64, 8) end
local function enc_u32(n) u32[0] = n; return ffi.string(u32, 4) end
local function enc_f64(x) f64[0] = x; return ffi.string(f64, 8) end

-- ---- save -------------------------------------------------------------------------------
local function key_name(path)
  if #path == 0 then return 'the saved value' end
  local parts = {}
  for i, k in ipairs(path) do
    if type(k) == 'string' and k:match('^[%a_][%w_]*$') then
      parts[#parts + 1] = (i > 1 and '.' or '') .. k
    else
      parts[#parts + 1] = '[' .. (type(k) == 'string' and string.format('%q', k) or tostring(k)) .. ']'
    end
  end
  return table.concat(parts)
end

local KEY_RANK = {number = 1, string = 2, boolean = 3}
local function key_less(a, b)
  local ra, rb = KEY_RANK[type(a)], KEY_RANK[type(b)]
  if ra ~= rb then return ra < rb end
  if ra == 3 then return (not a) and b end
  return a < b
end

-- Encoder: small pieces accumulate in `buf` and are flushed into `parts` as
-- one string; tensor data go into `parts` as (pointer, size) without a copy.
local function new_writer()
  local w = {buf = {}, parts = {}, sizes = {}, keep = {}, total = 0}
  function w.put(s)
    w.buf[#w.buf + 1] = s
    w.total = w.total + #s
  end
  function w.flush()
    if #w.buf > 0 then
      local s = table.concat(w.buf)
      w.buf = {}
      w.parts[#w.parts + 1] = s
      w.sizes[#w.sizes + 1] = #s
    end
  end
  function w.put_ptr(p, n, owner)
    w.flush()
    w.parts[#w.parts + 1] = p
    w.sizes[#w.sizes + 1] = n
    w.keep[#w.keep + 1] = owner
    w.total = w.total + n
  end
  return w
end

local encode

local function encode_tensor(w, v, path)
  local t = v.t
  if t == nil then error('save: ' .. key_name(path) .. ' is a released tensor', 0) end
  if t.device ~= C.GAM_CPU then
    v = v:to('cpu')
    t = v.t
  end
  local nd = t.ndim
  w.put(string.char(T_TENSOR, t.dtype, nd, t.requires_grad ~= 0 and 1 or 0, 0))
  for d = 0, nd - 1 do w.put(enc_u64(t.shape[d])) end
  local bytes = tonumber(t.numel) * ESIZE[t.dtype]
  w.put(enc_u64(bytes))
  if bytes > 0 then
    local p = ffi.cast('const uint8_t *', t.storage.data) + tonumber(t.offset) * ESIZE[t.dtype]
    w.put_ptr(p, bytes, v)
  end
end

function encode(w, v, path, active)
  local ty = type(v)
  if ty == 'boolean' then
    w.put(string.char(v and T_TRUE or T_FALSE))
  elseif ty == 'number' then
    w.put(string.char(T_NUMBER) .. enc_f64(v))
  elseif ty == 'string' then
    w.put(string.char(T_STRING) .. enc_u64(#v))
    w.put(v)
  elseif tensor.is_tensor(v) then
    encode_tensor(w, v, path)
  elseif ty == 'table' then
    if active[v] then error('save: ' .. key_name(path) .. ' contains itself (a cycle); it cannot be saved', 0) end
    if #path >= MAX_DEPTH then error('save: ' .. key_name(path) .. ' is nested too deeply', 0) end
    if getmetatable(v) ~= nil and type(v.state_dict) == 'function' then
      error('save: ' .. key_name(path) .. ' is an object with state_dict(); save its state_dict() instead', 0)
    end
    active[v] = true
    local keys = {}
    for k in pairs(v) do
      if not KEY_RANK[type(k)] then
        error(string.format('save: %s has a %s key; keys must be strings, numbers or booleans',
                            key_name(path), type(k)), 0)
      end
      keys[#keys + 1] = k
    end
    table.sort(keys, key_less)
    w.put(string.char(T_TABLE) .. enc_u64(#keys))
    for _, k in ipairs(keys) do
      path[#path + 1] = k
      encode(w, k, path, active)
      encode(w, v[k], path, active)
      path[#path] = nil
    end
    active[v] = nil
  else
    error(string.format('save: %s is a %s; a checkpoint holds tensors, numbers, strings, booleans '
                        .. 'and tables of them', key_name(path), ty == 'cdata' and 'cdata (not a tensor)' or ty), 0)
  end
end

--- gam.save(path, value): writes value to path atomically
function M.save(path, value)
  if type(path) ~= 'string' or path == '' then error('save: path must be a non-empty string', 0) end
  if value == nil then error('save: nothing to save (value is nil)', 0) end
  local w = new_writer()
  local ok, err = pcall(encode, w, value, {}, {})
  if not ok then error(err:match('^save: ') and (err:gsub('^save: ', 'save: ' .. path .. ': ', 1)) or err, 0) end
  w.flush()
  local payload = w.total
  local header = M.MAGIC .. enc_u32(M.VERSION) .. enc_u32(0) .. enc_u64(payload)
  local n = #w.parts + 2
  local parts = ffi.new('const void *[?]', n)
  local sizes = ffi.new('size_t[?]', n)
  parts[0], sizes[0] = header, #header
  local crc = C.gam_crc32(0, header, #header)
  for i, p in ipairs(w.parts) do
    parts[i], sizes[i] = p, w.sizes[i]
    crc = C.gam_crc32(crc, p, w.sizes[i])
  end
  local trailer = enc_u32(crc)
  parts[n - 1], sizes[n - 1] = trailer, TRAILER
  -- `parts` points into these strings and tensors: the module holds them during the write
  M._writing = {w, header, trailer}
  local rc = C.gam_write_file_atomic(path, n, parts, sizes)
  M._writing = nil
  tensor.check(rc)
  return path
end

--- gam.checkpoint.write_text(path, s): writes the string s to path atomically, as save does
function M.write_text(path, s)
  if type(path) ~= 'string' or path == '' then error('write_text: path must be a non-empty string', 0) end
  if type(s) ~= 'string' then error('write_text: the text must be a string', 0) end
  local parts, sizes = ffi.new('const void *[1]'), ffi.new('size_t[1]')
  parts[0], sizes[0] = s, #s
  tensor.check(C.gam_write_file_atomic(path, 1, parts, sizes))
  return path
end

--- gam.checkpoint.clean_temps(path) -> n: removes the temporary files that
-- writes of path killed midway left behind (".<name>.tmp.XXXXXX" in its folder,
-- held by no living writer); every save does it too
function M.clean_temps(path)
  if type(path) ~= 'string' or path == '' then error('clean_temps: path must be a non-empty string', 0) end
  local n = ffi.new('int[1]')
  tensor.check(C.gam_clean_temps(path, n))
  return n[0]
end

-- ---- load ----------------------------------------------------------------------------------
local function decoder(path, base, size, device)
  local pos = HEADER
  local stop = HEADER + size
  local scratch = ffi.new('uint64_t[1]')
  local dscratch = ffi.new('double[1]')
  local shape = ffi.new('int64_t[8]')
  local function corrupt(what)
    error(string.format('load: %s: corrupt checkpoint (%s at byte %d)', path, what, pos), 0)
  end
  local function need(n)
    if pos + n > stop then corrupt('value runs past the end of the payload') end
  end
  local function byte()
    need(1)
    local b = base[pos]
    pos = pos + 1
    return b
  end
  local function u64v()
    need(8)
    ffi.copy(scratch, base + pos, 8)
    pos = pos + 8
    if scratch[0] > 0x1fffffffffffffULL then corrupt('absurd length') end
    return tonumber(scratch[0])
  end
  local decode
  function decode(depth)
    if depth > MAX_DEPTH then corrupt('nesting too deep') end
    local tag = byte()
    if tag == T_FALSE then return false end
    if tag == T_TRUE then return true end
    if tag == T_NUMBER then
      need(8)
      ffi.copy(dscratch, base + pos, 8)
      pos = pos + 8
      return dscratch[0]
    end
    if tag == T_STRING then
      local n = u64v()
      need(n)
      local s = ffi.string(base + pos, n)
      pos = pos + n
      return s
    end
    if tag == T_TABLE then
      local n = u64v()
      if n > stop - pos then corrupt('table length larger than the file') end
      local t = {}
      for _ = 1, n do
        local k = decode(depth + 1)
        if type(k) == 'table' or tensor.is_tensor(k) or k ~= k then corrupt('invalid table key') end
        t[k] = decode(depth + 1)
      end
      return t
    end
    if tag == T_TENSOR then
      local dtype, nd, rg, reserved = byte(), byte(), byte(), byte()
      if not ESIZE[dtype] then corrupt('unknown tensor dtype ' .. dtype) end
      if nd > 8 or reserved ~= 0 then corrupt('bad tensor header') end
      local numel = 1
      for d = 0, nd - 1 do
        local s = u64v()
        shape[d] = s
        numel = numel * s
      end
      local bytes = u64v()
      if bytes ~= numel * ESIZE[dtype] then corrupt('tensor data size does not match its shape') end
      need(bytes)
      local v = tensor.op(C.gam_from_data, dtype, nd, shape, base + pos)
      pos = pos + bytes
      if rg == 1 then v:requires_grad_(true) end
      if device and device ~= 'cpu' then
        local moved = v:to(device)
        if moved ~= v then tensor.release(v) end
        v = moved
      end
      return v
    end
    corrupt('unknown value tag ' .. tag)
  end
  return function()
    local v = decode(0)
    if pos ~= stop then corrupt(string.format('%d bytes left over after the value', stop - pos)) end
    return v
  end
end

--- gam.load(path, {device = 'cpu'}) -> the saved value
function M.load(path, opts)
  if type(path) ~= 'string' or path == '' then error('load: path must be a non-empty string', 0) end
  if opts ~= nil and type(opts) ~= 'table' then error('load: options must be a table like {device = "cpu"}', 0) end
  local device = opts and opts.device or 'cpu'
  if not tensor.DEVICES[device] then error("load: unknown device '" .. tostring(device) .. "'", 0) end
  local pp, ps = ffi.new('void *[1]'), ffi.new('size_t[1]')
  tensor.check(C.gam_read_file(path, pp, ps))
  local owner = ffi.gc(ffi.cast('void *', pp[0]), C.gam_free_buffer)
  local buf = ffi.cast('const uint8_t *', owner)
  local size = tonumber(ps[0])
  local function fail(msg) error(string.format('load: %s: %s', path, msg), 0) end
  if size < #M.MAGIC or ffi.string(buf, #M.MAGIC) ~= M.MAGIC then
    fail(size == 0 and 'the file is empty, not a gamlua checkpoint'
         or 'not a gamlua checkpoint (no GAMLUACK magic at the start: a foreign file)')
  end
  if size < HEADER + TRAILER then
    fail(string.format('truncated checkpoint: %d bytes, shorter than the %d-byte header and trailer', size,
                       HEADER + TRAILER))
  end
  local version = ffi.new('uint32_t[1]')
  ffi.copy(version, buf + 8, 4)
  if version[0] ~= M.VERSION then
    fail(string.format('checkpoint format version %d; this gamlua reads version %d', tonumber(version[0]),
                       M.VERSION))
  end
  local plen = ffi.new('uint64_t[1]')
  ffi.copy(plen, buf + 16, 8)
  -- compared as uint64 (a huge length field is a huge number, never a negative one)
  local expected = plen[0] + (HEADER + TRAILER)
  if plen[0] > 0xffffffffffffffffULL - (HEADER + TRAILER) or expected > size then
    fail(string.format('truncated checkpoint: the header promises a %s-byte payload (%s bytes in all), '
                       .. 'the file has %d bytes', tostring(plen[0]):gsub('ULL$', ''),
                       tostring(expected):gsub('ULL$', ''), size))
  elseif expected < size then
    expected = tonumber(expected)
    fail(string.format('corrupt checkpoint: %d unexpected bytes after the end (%d bytes expected)',
                       size - expected, expected))
  end
  local crc = ffi.new('uint32_t[1]')
  ffi.copy(crc, buf + size - TRAILER, 4)
  local actual = C.gam_crc32(0, buf, size - TRAILER)
  if actual ~= crc[0] then
    fail(string.format('corrupt checkpoint: checksum mismatch (stored %08x, computed %08x)', tonumber(crc[0]),
                       tonumber(actual)))
  end
  local ok, value = pcall(decoder(path, buf, size - HEADER - TRAILER, device))
  ffi.gc(owner, nil)
  C.gam_free_buffer(owner)
  if not ok then error(value, 0) end
  return value
end

return M
