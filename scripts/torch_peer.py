# torch_peer.py — the PyTorch peer that gamlua's scripts measure themselves
# against (Debian's python3-torch on the CPU, $GAM_PYTHON on a GPU machine).
# Never a dependency of gamlua: only scripts/bench_layers.lua,
# scripts/bench_step.lua and scripts/study_fmnist.lua run it (and people, for
# the README's PyTorch training figures).
#
#   torch_peer.py layers THREADS MODEL BATCH ITERS wall|cpu
#       forward+backward (mean cross-entropy) per iteration  -> TIME <median seconds>
#   torch_peer.py step MODEL OPT BATCH STEPS WARMUP THREADS DEVICE
#       whole optimiser steps on one random batch            -> params=<n>, median_ms=<ms>
#   torch_peer.py fmnist DATA_DIR SEED STEPS THREADS OPT LR GRAD_RHO GRAD_NORM_RHO ALPHA BETA GAMMA WARMUP TOTAL RADII
#       the first STEPS steps of a Fashion-MNIST run            -> seed=, loss=, alive=
#       (WARMUP 0: the constant lr of epoch 1, as the reference; WARMUP > 0: the recipe, a per-step
#       warm-up, then a cosine to 0 at step TOTAL, radii follow|constant)
#   torch_peer.py train DATA_DIR SEED EPOCHS THREADS OPT LR GRAD_RHO GRAD_NORM_RHO ALPHA BETA GAMMA
#       all of `make train` (cosine lr per epoch)            -> a line per epoch, final test accuracy
#
# The models are the PyTorch definitions of gamlua's cnn_small, resnet18_c and
# pyramidnet110_c (same parameter counts); SAM, GSAM and GAM keep the released
# reference code's structure: per-parameter loops and state, norms as the norm
# of a stack of per-parameter norms, BatchNorm momentum 0 after the first pass.
import gzip, math, os, statistics, sys, time
import torch, torch.nn as nn, torch.nn.functional as F


# ---- models ------------------------------------------------------------------------------
def cnn_small(num_classes=10):
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, num_classes))


class BasicBlock(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False); self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False); self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18C(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False); self.bn1 = nn.BatchNorm2d(64)
        cin, layers = 64, []
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks = []
            for s in (stride, 1):
                blocks.append(BasicBlock(cin, planes, s)); cin = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(F.avg_pool2d(out, 4).flatten(1))


class PyrBottleneck(nn.Module):
    def __init__(self, cin, planes, stride, down):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin); self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes); self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes); self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn4 = nn.BatchNorm2d(planes * 4); self.relu = nn.ReLU(); self.down = down

    def forward(self, x):
        out = self.conv1(self.bn1(x))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.bn4(self.conv3(self.relu(self.bn3(out))))
        sc = self.down(x) if self.down is not None else x
        extra = out.size(1) - sc.size(1)
        if extra > 0:   # zero-padded extra channels on the shortcut
            sc = torch.cat([sc, torch.zeros(sc.size(0), extra, sc.size(2), sc.size(3), device=sc.device)], 1)
        return out + sc


class PyramidNet(nn.Module):   # lua/gam/models/pyramidnet.lua, depth 110, alpha 270
    def __init__(self, depth=110, alpha=270, num_classes=10):
        super().__init__()
        n = (depth - 2) // 9
        self.addrate, self.input_dim, self.dim = alpha / (3 * n), 16, 16
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False); self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self.stage(n, 1); self.layer2 = self.stage(n, 2); self.layer3 = self.stage(n, 2)
        self.bn_final = nn.BatchNorm2d(self.input_dim); self.relu = nn.ReLU()
        self.avgpool = nn.AvgPool2d(8); self.fc = nn.Linear(self.input_dim, num_classes)

    def stage(self, n, stride):
        down = nn.AvgPool2d((2, 2), stride=(2, 2), ceil_mode=True) if stride != 1 else None
        self.dim += self.addrate
        blocks = [PyrBottleneck(self.input_dim, int(round(self.dim)), stride, down)]
        for _ in range(1, n):
            nxt = self.dim + self.addrate
            blocks.append(PyrBottleneck(int(round(self.dim)) * 4, int(round(nxt)), 1, None))
            self.dim = nxt
        self.input_dim = int(round(self.dim)) * 4
        return nn.Sequential(*blocks)

    def forward(self, x):
        out = self.layer3(self.layer2(self.layer1(self.bn1(self.conv1(x)))))
        out = self.avgpool(self.relu(self.bn_final(out)))
        return self.fc(out.flatten(1))


MODELS = {'cnn_small': cnn_small, 'resnet18_c': ResNet18C, 'pyramidnet110_c': PyramidNet}


def input_shape(model_name):
    return (1, 28, 28) if model_name == 'cnn_small' else (3, 32, 32)


# ---- loss and the reference optimisers -------------------------------------------------------
def smooth_ce(pred, gold, s=0.1):
    # the seed's label smoothing: KL divergence to (1-s on the target, s/(K-1) elsewhere)
    one_hot = torch.full_like(pred, s / (pred.size(1) - 1))
    one_hot.scatter_(1, gold.unsqueeze(1), 1.0 - s)
    return F.kl_div(F.log_softmax(pred, 1), one_hot, reduction='none').sum(-1)


def disable_running_stats(model):
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.backup_momentum = m.momentum; m.momentum = 0


def enable_running_stats(model):
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and hasattr(m, 'backup_momentum'):
            m.momentum = m.backup_momentum


class Sharp(torch.optim.Optimizer):
    def __init__(self, params, base, model, adaptive=False, eps=1e-12):
        super().__init__(params, dict(adaptive=adaptive))
        self.base, self.model, self.adaptive, self.eps = base, model, adaptive, eps
        self.param_groups = self.base.param_groups

    def set_closure(self, loss_fn, x, y):
        def get_grad():
            self.base.zero_grad()
            with torch.enable_grad():
                out = self.model(x); loss = loss_fn(out, y)
            value = loss.data.clone().detach()
            loss.backward()
            return out, value
        self.forward_backward = get_grad

    def params(self):
        for g in self.param_groups:
            for p in g['params']:
                if p.grad is not None: yield p

    def grad_norm(self, by=None, weight_adaptive=False):
        def vec(p): return p.grad if by is None else self.state[p][by]
        return torch.norm(torch.stack([((torch.abs(p.data) if weight_adaptive else 1.0) * vec(p)).norm(p=2)
                                       for p in self.params()]), p=2)


class SAM(Sharp):
    def __init__(self, *a, rho=0.05, **k):
        super().__init__(*a, **k); self.rho = rho

    @torch.no_grad()
    def step(self):
        out, loss = self.forward_backward()
        scale = self.rho / (self.grad_norm(weight_adaptive=self.adaptive) + self.eps)
        for p in self.params():
            self.state[p]['old_p'] = p.data.clone()
            p.add_((torch.pow(p, 2) if self.adaptive else 1.0) * p.grad * scale.to(p))
        disable_running_stats(self.model)
        self.forward_backward()
        for p in self.params():
            p.data = self.state[p]['old_p']
        self.base.step()
        enable_running_stats(self.model)
        return out, loss


class GSAM(Sharp):
    def __init__(self, *a, rho=0.05, alpha=0.4, **k):
        super().__init__(*a, **k); self.rho, self.alpha = rho, alpha

    @torch.no_grad()
    def step(self):
        out, loss = self.forward_backward()
        scale = self.rho / (self.grad_norm(weight_adaptive=self.adaptive) + self.eps)
        for p in self.params():
            self.state[p]['old_g'] = p.grad.data.clone()
            e_w = p.grad * scale.to(p)
            if self.adaptive: e_w *= torch.pow(p, 2)
            p.add_(e_w); self.state[p]['e_w'] = e_w
        disable_running_stats(self.model)
        self.forward_backward()
        inner = sum(torch.sum(self.state[p]['old_g'] * p.grad.data) for p in self.params())
        new_n, old_n = self.grad_norm(), self.grad_norm(by='old_g')
        cosine = inner / (new_n * old_n + self.eps)
        for p in self.params():
            vertical = self.state[p]['old_g'] - cosine * old_n * p.grad.data / (new_n + self.eps)
            p.grad.data.add_(vertical, alpha=-self.alpha)
        for p in self.params():
            p.data.sub_(self.state[p]['e_w'])
        self.base.step()
        enable_running_stats(self.model)
        return out, loss


class GAM(Sharp):
    def __init__(self, *a, grad_rho=0.03, grad_norm_rho=0.2, alpha=0.1, beta=0.1, gamma=0.05, **k):
        super().__init__(*a, **k)
        self.grad_rho, self.grad_norm_rho = grad_rho, grad_norm_rho
        self.alpha, self.beta, self.gamma = alpha, beta, gamma

    @torch.no_grad()
    def perturb(self, idx):
        scale = self.grad_rho / (self.grad_norm(weight_adaptive=self.adaptive) + self.eps)
        for p in self.params():
            e_w = p.grad * scale.to(p)
            if self.adaptive: e_w *= torch.pow(p, 2)
            p.add_(e_w)
            if idx == 0:
                self.state[p]['g_0'] = p.grad.data.clone(); self.state[p]['e_w_0'] = e_w
            else:
                self.state[p]['g_2'] = p.grad.data.clone(); self.state[p]['e_w_1_2'] += e_w

    @torch.no_grad()
    def grad_norm_ascent(self):
        for p in self.params():
            self.state[p]['g_1'] = p.grad.data.clone()
            p.grad.data -= self.state[p]['g_0']
        scale = self.grad_norm_rho / (self.grad_norm(weight_adaptive=self.adaptive) + self.eps)
        for p in self.params():
            e_w = p.grad * scale.to(p)
            if self.adaptive: e_w *= torch.pow(p, 2)
            p.add_(e_w); self.state[p]['e_w_1_2'] = e_w

    @torch.no_grad()
    def unperturb(self, key):
        for p in self.params():
            if key in self.state[p]: p.data.sub_(self.state[p][key])

    @torch.no_grad()
    def decompose(self):
        inner = 0.0
        for p in self.params():
            self.state[p]['pro_m'] = self.state[p]['g_0'] + abs(1 - self.beta) * self.state[p]['g_2']
            p.grad.data = self.alpha * self.state[p]['g_1'] + (1 - self.alpha) * p.grad.data.detach().clone()
            inner += torch.sum(self.state[p]['pro_m'] * p.grad.data)
        new_n, old_n = self.grad_norm(), self.grad_norm(by='pro_m')
        cosine = inner / (new_n * old_n + self.eps)
        for p in self.params():
            vertical = self.state[p]['pro_m'] - cosine * old_n * p.grad.data / (new_n + self.eps)
            p.grad.data.add_(vertical, alpha=-self.gamma)

    @torch.no_grad()
    def step(self):
        out, loss = self.forward_backward()
        self.perturb(0)
        disable_running_stats(self.model)
        self.forward_backward()
        self.unperturb('e_w_0')
        self.grad_norm_ascent()
        self.forward_backward()
        self.perturb(1)
        self.forward_backward()
        self.decompose()
        self.unperturb('e_w_1_2')
        self.base.step()
        enable_running_stats(self.model)
        return out, loss


def loss_fn(out, target):
    return smooth_ce(out, target, 0.1).mean()


# ---- layers: forward+backward time ------------------------------------------------------------
def cmd_layers(threads, name, batch, iters, clock_name):
    clock = time.process_time if clock_name == 'cpu' else time.perf_counter
    torch.set_num_threads(int(threads))
    torch.manual_seed(0)
    batch, iters = int(batch), int(iters)
    model = MODELS[name]().train()
    x = torch.randn(batch, *input_shape(name))
    y = torch.randint(0, 10, (batch,))

    def step():
        F.cross_entropy(model(x), y).backward()
        model.zero_grad(set_to_none=False)
    step(); step()
    times = []
    for _ in range(iters):
        t0 = clock(); step(); times.append(clock() - t0)
    print('TIME %.9f' % statistics.median(times))


# ---- step: whole optimiser steps -----------------------------------------------------------
def cmd_step(model_name, opt_name, batch, steps, warmup, threads, device):
    batch, steps, warmup = int(batch), int(steps), int(warmup)
    torch.set_num_threads(int(threads))
    torch.manual_seed(1)
    if device == 'cuda':
        # float32 as gamlua computes it: no TF32 anywhere; heuristic cuDNN algorithms
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.benchmark = False
    model = MODELS[model_name]().to(device).train()
    print('params=%d' % sum(p.numel() for p in model.parameters()))
    x = torch.randn(batch, *input_shape(model_name), device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    base = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    if opt_name == 'sgd':
        def step():
            base.zero_grad(); loss = loss_fn(model(x), y); loss.backward(); loss.item(); base.step()
    else:
        opt = {'sam': SAM, 'gsam': GSAM, 'gam': GAM}[opt_name](model.parameters(), base, model)
        opt.set_closure(loss_fn, x, y)

        def step():
            _, loss = opt.step(); loss.item()
    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
    for _ in range(warmup): step()
    sync()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter(); step(); sync(); times.append((time.perf_counter() - t0) * 1e3)
    print('median_ms=%.6f' % statistics.median(times))


# ---- fmnist: the start of `make train` ---------------------------------------------------------
FMNIST_MEAN, FMNIST_STD = 0.2860, 0.3530   # lua/gam/data/datasets.lua


def read_idx(path):
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rb') as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim)]
    return torch.frombuffer(bytearray(data[4 + 4 * ndim:]), dtype=torch.uint8).reshape(dims)


def find_idx(root, stem):
    for name in (stem + '.gz', stem):
        if os.path.exists(os.path.join(root, name)): return os.path.join(root, name)
    raise SystemExit('torch_peer: %s(.gz) not found in %s' % (stem, root))


def hidden_alive(model, x):
    # hidden units of cnn_small (the ReLU after Linear 3136->128) active on some image of x
    with torch.no_grad():
        return int((model[:11](x) > 0).any(0).sum())


def fmnist_setup(root, seed, threads, opt_name, lr, grad_rho, grad_norm_rho, alpha, beta, gamma):
    # the data (normalised as gamlua does), cnn_small and its optimiser as `make train` builds them
    torch.set_num_threads(int(threads))
    torch.manual_seed(int(seed))

    def images(stem):
        x = read_idx(find_idx(root, stem)).float().div(255)
        return x.sub(FMNIST_MEAN).div(FMNIST_STD).unsqueeze(1)
    data = {'train': (images('train-images-idx3-ubyte'), read_idx(find_idx(root, 'train-labels-idx1-ubyte')).long()),
            'test': (images('t10k-images-idx3-ubyte'), read_idx(find_idx(root, 't10k-labels-idx1-ubyte')).long())}
    model = cnn_small().train()
    base = torch.optim.SGD(model.parameters(), lr=float(lr), momentum=0.9, weight_decay=5e-4)
    opt = None
    if opt_name == 'gam':
        opt = GAM(model.parameters(), base, model, grad_rho=float(grad_rho), grad_norm_rho=float(grad_norm_rho),
                  alpha=float(alpha), beta=float(beta), gamma=float(gamma))
    return data, model, base, opt


def fmnist_epoch(data, model, base, opt, steps, before_step=None):
    # one epoch's first `steps` batches of 128 (shuffled, random flips); returns the losses
    images, labels = data['train']
    model.train()
    perm, losses = torch.randperm(images.size(0)), []
    for step in range(steps):
        if before_step: before_step(step + 1)
        idx = perm[step * 128:(step + 1) * 128]
        x, y = images[idx].clone(), labels[idx]
        flip = torch.rand(x.size(0)) < 0.5
        x[flip] = x[flip].flip(3)
        if opt is None:
            base.zero_grad(); loss = loss_fn(model(x), y); loss.backward(); base.step()
        else:
            opt.set_closure(loss_fn, x, y)
            _, loss = opt.step()
        losses.append(float(loss))
    return losses


def recipe(base, opt, lr, warmup, total, radii):
    # before step k (from 1): train_cifar.lua's recipe (a CosineScheduler with warm-up, radii by the
    # ProportionScheduler wiring with min_value 0), or nothing (warmup 0: epoch 1's constant lr)
    if warmup == 0: return None
    rhos = (opt.grad_rho, opt.grad_norm_rho) if opt is not None else None

    def before_step(k):
        if k < warmup: v = lr * k / warmup
        elif k == warmup: v = lr
        else: v = lr * (math.cos((k - warmup) / (total - warmup) * math.pi) + 1) / 2
        for g in base.param_groups: g['lr'] = v
        if rhos and radii == 'follow':
            opt.grad_rho, opt.grad_norm_rho = rhos[0] * v / lr, rhos[1] * v / lr
    return before_step


def cmd_fmnist(root, seed, steps, *rest):
    setup, (warmup, total, radii) = rest[:8], rest[8:]
    if radii not in ('follow', 'constant'): raise SystemExit('torch_peer: RADII must be follow or constant')
    data, model, base, opt = fmnist_setup(root, seed, *setup)
    hook = recipe(base, opt, float(setup[2]), int(warmup), int(total), radii)
    losses = fmnist_epoch(data, model, base, opt, int(steps), hook)
    tail = losses[-min(20, len(losses)):]
    print('seed=%d loss=%.4f alive=%d' % (int(seed), sum(tail) / len(tail), hidden_alive(model, data['test'][0][:1000])))


def cmd_train(root, seed, epochs, *setup):
    # `make train` in PyTorch: cosine learning rate set once per epoch (CosineAnnealingLR), test accuracy per epoch
    data, model, base, opt = fmnist_setup(root, seed, *setup)
    epochs, t0 = int(epochs), time.perf_counter()
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(base, T_max=epochs)
    steps = (data['train'][0].size(0) + 127) // 128
    for epoch in range(1, epochs + 1):
        losses = fmnist_epoch(data, model, base, opt, steps)
        sched.step()
        model.eval()
        with torch.no_grad():
            x, y = data['test']
            correct = sum(int((model(x[i:i + 500]).argmax(1) == y[i:i + 500]).sum()) for i in range(0, x.size(0), 500))
        acc = 100.0 * correct / x.size(0)
        print('epoch %d/%d  train loss %.4f  test acc %.2f%%  time %.0fs' % (epoch, epochs, sum(losses) / len(losses),
                                                                           acc, time.perf_counter() - t0), flush=True)
    print('final test accuracy: %.2f%%; total time %.0fs' % (acc, time.perf_counter() - t0))


COMMANDS = {'layers': (cmd_layers, 5), 'step': (cmd_step, 7), 'fmnist': (cmd_fmnist, 14), 'train': (cmd_train, 11)}

if __name__ == '__main__':
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS or len(sys.argv) - 2 != COMMANDS[sys.argv[1]][1]:
        lines = open(__file__).read().split('\n')
        raise SystemExit('\n'.join(l[2:] for l in lines[:lines.index('import gzip, math, os, statistics, sys, time')]))
    fn, _ = COMMANDS[sys.argv[1]]
    fn(*sys.argv[2:])
