-- A busted output handler for specs run on every rank of an MPI job
-- (tests/dist/run_mpi.sh): each rank prints its own failures (prefixed with
-- its rank); rank 0 prints the closing line "N passed, N failed", where a test
-- fails when it failed on any rank. The ranks run the same tests in the same
-- order, so test i is the same test everywhere.
return function(_options)
  local busted = require 'busted'
  local handler = require 'busted.outputHandlers.base'()
  local dist = require 'gam.dist'
  local flags = {}

  handler.testEnd = function(_element, _parent, status)
    flags[#flags + 1] = (status == 'failure' or status == 'error') and 1 or 0
    return nil, true
  end

  handler.suiteEnd = function()
    local rank = dist.rank()
    local function show(list, kind)
      for _, t in ipairs(list) do
        local msg = t.message
        if type(msg) ~= 'string' then msg = require('pl.pretty').write(msg) end
        local where = t.trace and t.trace.short_src and (t.trace.short_src .. ':' .. (t.trace.currentline or '?')) or ''
        io.write(string.format('\n[rank %d] %s: %s\n  %s\n  %s\n', rank, kind, t.name, where,
                               (msg or ''):gsub('\n', '\n  ')))
        if t.trace and t.trace.traceback and kind == 'ERROR' then
          io.write('  ' .. t.trace.traceback:gsub('\n', '\n  ') .. '\n')
        end
      end
    end
    show(handler.failures, 'FAILED')
    show(handler.errors, 'ERROR')
    io.flush()
    local counts = dist.sum_numbers({#flags})
    local bad = 0
    if counts[1] ~= #flags * dist.size() then
      bad = #flags  -- the ranks ran different tests: count them all as failed
      io.write(string.format('[rank %d] the ranks ran different numbers of tests\n', rank))
    else
      local sums = dist.sum_numbers(flags)
      for _, s in ipairs(sums) do if s > 0 then bad = bad + 1 end end
    end
    dist.barrier()
    if rank == 0 then
      io.write(string.format('%d passed, %d failed\n', #flags - bad, bad))
      io.flush()
    end
    handler.any_failed = bad > 0
    return nil, true
  end

  busted.subscribe({"error", "file"}, function(element, _parent, message)
    io.write(string.format('[rank %d] ERROR loading %s: %s\n', dist.rank(), tostring(element.name), tostring(message)))
    return nil, true
  end)
  busted.subscribe({'test', 'end'}, handler.testEnd, {predicate = handler.cancelOnPending})
  busted.subscribe({'suite', 'end'}, handler.suiteEnd)
  return handler
end
