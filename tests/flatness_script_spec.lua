-- scripts/flatness.lua end to end on a tiny checkpoint made here (cnn_small,
-- Fashion-MNIST, the format train_cifar writes): the table, the CSV rows
-- appended across runs, the numbers equal to gam.flatness at the same
-- settings, and clear errors for a missing file, a foreign file and bad flags.
local gam = require 'gam'
local F = gam.F
local here = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.'
local T = dofile(here .. '/helpers.lua')
local q, contains = T.q, T.contains
local gamlua = T.gamlua()
local script = here .. '/../scripts/flatness.lua'

local function run(args)
  return T.run(string.format('%s %s %s', q(gamlua), q(script), args))
end

describe('scripts/flatness.lua', function()
  local dir = T.tmpdir()
  local ck = dir .. '/checkpoint.gam'
  gam.manual_seed(0)
  local model = gam.models.get('cnn_small', {num_classes = 10, in_channels = 1})
  gam.save(ck, {kind = 'gamlua train_cifar checkpoint', version = 1, epoch = 3,
                args = {arch = 'cnn_small', dataset = 'FashionMNIST'}, model = model:state_dict()})
  local FLAGS = '--examples 12 --batch-size 6 --measures lambda_max,zeroth --iters 2 --steps 2 --threads 1'

  it('measures a checkpoint, prints a table and appends CSV rows', function()
    local csv = dir .. '/flat.csv'
    local out, rc = run(q(ck) .. ' ' .. FLAGS .. ' --csv ' .. q(csv))
    assert.are.equal(0, rc, out)
    contains(out, 'cnn_small on FashionMNIST, epoch 3')
    contains(out, 'lambda_max')
    contains(out, 'zeroth_order')
    local out2, rc2 = run(q(ck) .. ' ' .. FLAGS .. ' --csv ' .. q(csv))
    assert.are.equal(0, rc2, out2)
    local lines = {}
    for l in io.lines(csv) do lines[#lines + 1] = l end
    assert.are.equal(3, #lines)
    contains(lines[1], 'time,checkpoint,arch,dataset,epoch,examples')
    local function cols(l)
      local c = {}
      for f in (l .. ','):gmatch('([^,]*),') do c[#c + 1] = f end
      return c
    end
    local h, r1, r2 = cols(lines[1]), cols(lines[2]), cols(lines[3])
    local row = {}
    for i, k in ipairs(h) do row[k] = r1[i] end
    assert.are.equal('cnn_small', row.arch)
    assert.are.equal('12', row.examples)
    assert.are.equal('', row.trace)
    -- the same numbers as gam.flatness on the same images, bit for bit across runs
    for i, k in ipairs(h) do
      if k == 'lambda_max' or k == 'r0' or k == 'loss' then assert.are.equal(r1[i], r2[i]) end
    end
    local ds = gam.data.fashion_mnist{train = true}
    local x, y = gam.data.augment(ds:slice(1, 12))
    local fl = gam.flatness.new{model = model, loss = function(p, t) return F.cross_entropy(p, t):mean() end,
                                batches = {{x:narrow(1, 1, 6), y:narrow(1, 1, 6)},
                                           {x:narrow(1, 7, 6), y:narrow(1, 7, 6)}}}
    local lam = fl:lambda_max{iters = 2, seed = 0}
    -- the script batches the images through its own loader: float32 rounding of the inputs may
    -- differ in the last bit, which two finite-difference iterations amplify to ~1e-6
    assert.is_true(math.abs(lam - tonumber(row.lambda_max)) <= 1e-5 * math.abs(lam))
    assert.is_true(math.abs(fl:loss() - tonumber(row.loss)) <= 1e-7)
  end)

  it('clear errors', function()
    local out, rc = run(q(dir .. '/none.gam'))
    assert.are_not.equal(0, rc)
    contains(out, 'cannot read the checkpoint')
    local other = dir .. '/other.gam'
    gam.save(other, {hello = 1})
    out, rc = run(q(other))
    assert.are_not.equal(0, rc)
    contains(out, 'is not a checkpoint written by scripts/train_cifar.lua')
    out, rc = run(q(ck) .. ' --measures sharpness')
    assert.are_not.equal(0, rc)
    contains(out, "unknown measure 'sharpness'")
    out, rc = run(q(ck) .. ' --rho 0')
    assert.are_not.equal(0, rc)
    contains(out, '--rho must be a number > 0')
    out, rc = run(q(ck) .. ' --examples 0')
    assert.are_not.equal(0, rc)
    contains(out, '--examples must be a positive integer')
    out, rc = run('')
    assert.are_not.equal(0, rc)
    contains(out, 'give the checkpoint')
  end)
end)
