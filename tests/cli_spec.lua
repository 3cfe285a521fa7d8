-- scripts/cli.lua: the scripts' flags through lua-argparse — kinds, defaults,
-- auto values, --flag=value and repeated flags (errors: train_spec, study_spec).
local here = debug.getinfo(1, 'S').source:sub(2):match('^(.*)/[^/]*$') or '.'
local cli = dofile(here .. '/../scripts/cli.lua')

local FLAGS = {
  {'epochs', 'int', 200, 'epochs'},
  {'lr', 'number', nil, 'learning rate', '0.1'},
  {'out', 'string', nil, 'folder', 'runs/x'},
  {'no-flip', 'bool', false, 'no flips'},
  {'resume', 'optional', false, 'continue'},
  {'batches', 'ints', {32, 128}, 'batch sizes'},
  {'models', 'strings', {'a'}, 'models'},
}
local function parse(...) return cli.parse {name = 't', flags = FLAGS, argv = {...}} end

describe('scripts/cli.lua', function()
  it('fills defaults, keeps auto values nil and keys flags by name', function()
    local a = parse()
    assert.are.same({epochs = 200, ['no-flip'] = false, resume = false, batches = {32, 128}, models = {'a'}}, a)
  end)

  it('converts each kind', function()
    local a = parse('--epochs', '3', '--lr=0.25', '--out', 'o', '--no-flip', '--batches', '1,2,3', '--models=x,y')
    assert.are.equal(3, a.epochs)
    assert.are.equal(0.25, a.lr)
    assert.are.equal('o', a.out)
    assert.is_true(a['no-flip'])
    assert.are.same({1, 2, 3}, a.batches)
    assert.are.same({'x', 'y'}, a.models)
  end)

  it('takes an optional value: alone, separate, after =, and not another flag', function()
    assert.is_true(parse('--resume').resume)
    assert.are.equal('p.gam', parse('--resume', 'p.gam').resume)
    assert.are.equal('q.gam', parse('--resume=q.gam').resume)
    local a = parse('--resume', '--epochs', '4')
    assert.is_true(a.resume)
    assert.are.equal(4, a.epochs)
  end)

  it('lets a later flag win', function()
    assert.are.equal(4, parse('--epochs', '3', '--epochs', '4').epochs)
  end)

  it('shows every flag with its default or auto text in --help', function()
    local help = cli.parser {name = 't', flags = FLAGS, epilog = 'the end'}:get_help()
    for _, s in ipairs {'\n  --epochs N ', '[200]', '--lr X ', '[0.1]', '[runs/x]', '--no-flip ', '[off]',
                        '--resume [PATH]', '[32,128]', 'the end'} do
      assert.truthy(help:find(s, 1, true), s .. ' missing in:\n' .. help)
    end
  end)
end)
