-- scripts/study_fmnist.lua (the seed study behind the README's Fashion-MNIST
-- GAM figures), gamlua side only: its options, its report, and that a seed
-- always gives the same run.
local here = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.'
local T = dofile(here .. '/helpers.lua')
local q, contains = T.q, T.contains
local cmd = T.q(T.gamlua()) .. ' ' .. q(here .. '/../scripts/study_fmnist.lua')

describe('scripts/study_fmnist.lua', function()
  it('rejects bad options with a clear message', function()
    for flags, msg in pairs {
      ['--opt adam'] = '--opt must be gam or sgd',
      ['--steps 0'] = '--steps must be a whole number in [1, 468]',
      ['--steps 2.5'] = '--steps needs an integer, got 2.5',
      ['--lr fast'] = "--lr needs a number, got 'fast'",
      ['--seeds a-b'] = '--seeds',
      ['--bogus 1'] = "study_fmnist: unknown option '--bogus' (see --help)",
      ['--steps'] = "option '--steps' requires an argument",
      ['--threads 2 extra'] = "unknown argument 'extra'",
      ['--radii some'] = "--radii must be follow or constant, got 'some'",
      ['--warmup 1407'] = '--warmup must be a whole number in [0, 1407)',
      ['--warmup=-1'] = '--warmup must be a whole number in [0, 1407)',
      ['--epochs 0'] = '--epochs must be at least 1',
    } do
      local out, code = T.run(cmd .. ' ' .. flags)
      assert.are.equal(2, code, flags)
      contains(out, msg)
    end
  end)

  it('reports each seed, and the same figures for the same seed', function()
    local flags = ' --seeds 3,3 --steps 2 --threads 1 --no-torch'
    local out, code = T.run(cmd .. flags)
    assert.are.equal(0, code, out)
    contains(out, "GAM rho' 0.03 rho 0.2 alpha 0.1 beta 0.1 gamma 0.05, lr 0.05, 1 thread(s), gamlua only")
    local rows = {}
    for seed, loss, alive in out:gmatch('\n%s+(%d+)%s+([%d%.]+) /%s+(%d+)%s+%-') do
      rows[#rows + 1] = {tonumber(seed), tonumber(loss), tonumber(alive)}
    end
    assert.are.equal(2, #rows, out)
    assert.are.same(rows[1], rows[2])
    assert.are.equal(3, rows[1][1])
    assert.is_true(rows[1][2] > 0.5 and rows[1][2] < 3, out)   -- two steps from a random start
    assert.is_true(rows[1][3] >= 0 and rows[1][3] <= 128, out)
    local kept = rows[1][3] > 0 and 2 or 0
    contains(out, string.format('after 2 steps: gamlua %d of 2, pytorch -', kept))

    -- the recipe: step 1 at lr 0.05/234, so step 2's loss is not the constant-lr run's
    local rout, rcode = T.run(cmd .. flags .. ' --warmup 234 --radii follow')
    assert.are.equal(0, rcode, rout)
    contains(rout, 'lr 0.05 (warm-up 234 steps, cosine over 3 epochs, radii follow)')
    local rloss = tonumber(rout:match('\n%s+3%s+([%d%.]+) /'))
    assert.is_number(rloss, rout)
    assert.are_not.equal(rows[1][2], rloss)
  end)
end)
