-- A busted output handler: one line per spec file, the failures in full, and
-- the closing line "N passed, N failed" (errors count as failures).
return function()
  local busted = require 'busted'
  local handler = require 'busted.outputHandlers.base'()
  local per_file = {}
  local order = {}

  local function file_of(element)
    local t = element.trace or (element.parent and element.parent.trace) or {}
    return t.short_src or '?'
  end

  handler.testEnd = function(element, _, status)
    local f = file_of(element)
    if not per_file[f] then per_file[f] = {ok = 0, bad = 0}; order[#order + 1] = f end
    if status == 'success' then per_file[f].ok = per_file[f].ok + 1
    elseif status == 'failure' or status == 'error' then per_file[f].bad = per_file[f].bad + 1 end
    return nil, true
  end

  handler.suiteEnd = function()
    for _, f in ipairs(order) do
      io.write(string.format('%-40s %4d passed, %d failed\n', f, per_file[f].ok, per_file[f].bad))
    end
    local function show(list, kind)
      for _, t in ipairs(list) do
        local msg = t.message
        if type(msg) ~= 'string' then msg = require('pl.pretty').write(msg) end
        local where = t.trace and t.trace.short_src and (t.trace.short_src .. ':' .. (t.trace.currentline or '?')) or ''
        io.write(string.format('\n%s: %s\n  %s\n  %s\n', kind, t.name, where, (msg or ''):gsub('\n', '\n  ')))
        if t.trace and t.trace.traceback and kind == 'ERROR' then
          io.write('  ' .. t.trace.traceback:gsub('\n', '\n  ') .. '\n')
        end
      end
    end
    show(handler.failures, 'FAILED')
    show(handler.errors, 'ERROR')
    local bad = #handler.failures + #handler.errors
    io.write(string.format('%d passed, %d failed\n', #handler.successes, bad))
    io.flush()
    return nil, true
  end

  -- errors outside any test (a spec file that does not load)
  busted.subscribe({'error', 'file'}, function(element, _, message)
    io.write('ERROR loading ' .. tostring(element.name) .. ': ' .. tostring(message) .. '\n')
    return nil, true
  end)
  busted.subscribe({'test', 'end'}, handler.testEnd, {predicate = handler.cancelOnPending})
  busted.subscribe({'suite', 'end'}, handler.suiteEnd)
  return handler
end
