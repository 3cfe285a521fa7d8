#!/usr/bin/python3
"""The PyTorch definitions of gamlua's model zoo, used once to obtain the
parameter counts asserted in tests/models_spec.lua.

    /usr/bin/python3 tests/models_param_counts.py          # counts
    /usr/bin/python3 tests/models_param_counts.py --names  # also every parameter/buffer name and shape

The networks follow the GAM seed (ResNet_c and PyramidNet for CIFAR) and the
SAM seed it builds on (WideResNet with pre-activation units); cnn_small is the
small Fashion-MNIST CNN of issue 3. Written for this project, not copied.
"""
import sys
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---- ResNet for CIFAR (3x3 stem, no max-pool, 4x4 average pool) -------------
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != planes * self.expansion:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, planes * self.expansion, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(planes * self.expansion))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != planes * self.expansion:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, planes * self.expansion, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(planes * self.expansion))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class ResNetC(nn.Module):
    def __init__(self, block, blocks, num_classes=10, in_channels=3):
        super().__init__()
        self.cin = 64
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = self.make(block, 64, blocks[0], 1)
        self.layer2 = self.make(block, 128, blocks[1], 2)
        self.layer3 = self.make(block, 256, blocks[2], 2)
        self.layer4 = self.make(block, 512, blocks[3], 2)
        self.linear = nn.Linear(512 * block.expansion, num_classes)

    def make(self, block, planes, n, stride):
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(block(self.cin, planes, s))
            self.cin = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.avg_pool2d(out, 4)
        return self.linear(out.view(out.size(0), -1))


# ---- PyramidNet for CIFAR (bottleneck) ----------------------------------------
class PyramidBottleneck(nn.Module):
    outchannel_ratio = 4

    def __init__(self, cin, planes, stride=1, downsample=None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn4 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = self.conv1(self.bn1(x))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        out = self.bn4(out)
        shortcut = self.downsample(x) if self.downsample is not None else x
        extra = out.size(1) - shortcut.size(1)
        if extra > 0:
            pad = torch.zeros(out.size(0), extra, shortcut.size(2), shortcut.size(3))
            shortcut = torch.cat((shortcut, pad), 1)
        return out + shortcut


class PyramidNetC(nn.Module):
    def __init__(self, depth, alpha, num_classes=10, in_channels=3):
        super().__init__()
        n = (depth - 2) // 9
        self.addrate = alpha / (3 * n * 1.0)
        self.input_dim = 16
        self.dim = 16.0
        self.conv1 = nn.Conv2d(in_channels, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self.make(n, 1)
        self.layer2 = self.make(n, 2)
        self.layer3 = self.make(n, 2)
        self.bn_final = nn.BatchNorm2d(self.input_dim)
        self.relu_final = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(8)
        self.fc = nn.Linear(self.input_dim, num_classes)

    def make(self, n, stride):
        down = nn.AvgPool2d((2, 2), stride=(2, 2), ceil_mode=True) if stride != 1 else None
        self.dim = self.dim + self.addrate
        layers = [PyramidBottleneck(self.input_dim, int(round(self.dim)), stride, down)]
        for _ in range(1, n):
            nxt = self.dim + self.addrate
            layers.append(PyramidBottleneck(int(round(self.dim)) * 4, int(round(nxt)), 1))
            self.dim = nxt
        self.input_dim = int(round(self.dim)) * 4
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.bn1(self.conv1(x))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = self.avgpool(self.relu_final(self.bn_final(x)))
        return self.fc(x.view(x.size(0), -1))


# ---- WideResNet with pre-activation units (the SAM seed's definition) ---------
class BasicUnit(nn.Module):
    def __init__(self, c, dropout):
        super().__init__()
        self.block = nn.Sequential(OrderedDict([
            ("0_normalization", nn.BatchNorm2d(c)), ("1_activation", nn.ReLU(inplace=True)),
            ("2_convolution", nn.Conv2d(c, c, 3, stride=1, padding=1, bias=False)),
            ("3_normalization", nn.BatchNorm2d(c)), ("4_activation", nn.ReLU(inplace=True)),
            ("5_dropout", nn.Dropout(dropout, inplace=True)),
            ("6_convolution", nn.Conv2d(c, c, 3, stride=1, padding=1, bias=False))]))

    def forward(self, x):
        return x + self.block(x)


class DownsampleUnit(nn.Module):
    def __init__(self, cin, cout, stride, dropout):
        super().__init__()
        self.norm_act = nn.Sequential(OrderedDict([
            ("0_normalization", nn.BatchNorm2d(cin)), ("1_activation", nn.ReLU(inplace=True))]))
        self.block = nn.Sequential(OrderedDict([
            ("0_convolution", nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)),
            ("1_normalization", nn.BatchNorm2d(cout)), ("2_activation", nn.ReLU(inplace=True)),
            ("3_dropout", nn.Dropout(dropout, inplace=True)),
            ("4_convolution", nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False))]))
        self.downsample = nn.Conv2d(cin, cout, 1, stride=stride, padding=0, bias=False)

    def forward(self, x):
        x = self.norm_act(x)
        return self.block(x) + self.downsample(x)


class Block(nn.Module):
    def __init__(self, cin, cout, stride, depth, dropout):
        super().__init__()
        self.block = nn.Sequential(DownsampleUnit(cin, cout, stride, dropout),
                                   *(BasicUnit(cout, dropout) for _ in range(depth)))

    def forward(self, x):
        return self.block(x)


class WideResNet(nn.Module):
    def __init__(self, depth, width_factor, dropout, in_channels, labels):
        super().__init__()
        f = [16, 16 * width_factor, 32 * width_factor, 64 * width_factor]
        d = (depth - 4) // 6
        self.f = nn.Sequential(OrderedDict([
            ("0_convolution", nn.Conv2d(in_channels, f[0], 3, stride=1, padding=1, bias=False)),
            ("1_block", Block(f[0], f[1], 1, d, dropout)),
            ("2_block", Block(f[1], f[2], 2, d, dropout)),
            ("3_block", Block(f[2], f[3], 2, d, dropout)),
            ("4_normalization", nn.BatchNorm2d(f[3])), ("5_activation", nn.ReLU(inplace=True)),
            ("6_pooling", nn.AvgPool2d(kernel_size=8)), ("7_flattening", nn.Flatten()),
            ("8_classification", nn.Linear(f[3], labels))]))

    def forward(self, x):
        return self.f(x)


# ---- the small CNN for 28x28 grey images ---------------------------------------
def cnn_small(num_classes=10, in_channels=1):
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, num_classes))


MODELS = OrderedDict([
    ("resnet18_c", lambda: ResNetC(BasicBlock, [2, 2, 2, 2])),
    ("resnet34_c", lambda: ResNetC(BasicBlock, [3, 4, 6, 3])),
    ("resnet50_c", lambda: ResNetC(Bottleneck, [3, 4, 6, 3])),
    ("resnet101_c", lambda: ResNetC(Bottleneck, [3, 4, 23, 3])),
    ("resnet152_c", lambda: ResNetC(Bottleneck, [3, 8, 36, 3])),
    ("resnet18_c(num_classes=100)", lambda: ResNetC(BasicBlock, [2, 2, 2, 2], num_classes=100)),
    ("pyramidnet110_c", lambda: PyramidNetC(110, 270)),
    ("pyramidnet272_c", lambda: PyramidNetC(272, 200)),
    ("wrn28_10", lambda: WideResNet(28, 10, 0.0, 3, 10)),
    ("wrn16_8", lambda: WideResNet(16, 8, 0.0, 3, 10)),
    ("cnn_small", lambda: cnn_small()),
])

if __name__ == "__main__":
    names = "--names" in sys.argv
    for key, make in MODELS.items():
        m = make()
        count = sum(p.numel() for p in m.parameters())
        print(f"{key} {count}")
        if names:
            for n, p in m.named_parameters():
                print(f"  P {n} {list(p.shape)}")
            for n, b in m.named_buffers():
                if not n.endswith("num_batches_tracked"):
                    print(f"  B {n} {list(b.shape)}")
