"""The PyTorch modules equivalent to fer's models, with the same state_dict names, so a fer
checkpoint loads into them (`load_state_dict(strict=True)`) and the two can be compared number
for number.

The models are the source studies' (MODELS.md): the four-model study's softmax, mlp and cnn
(48×48 grey, 7 classes); the six-architecture study's basic_cnn, resnet, googlenet, unet, newnet
and roglenet (48×48 RGB, 7 classes); the Keras study's keras_cnn (222×222 RGB, 6 classes); the
real-time study's realtime_cnn (48×48 grey, 7 classes). `TWINS` lists them with their studies'
input shapes and class counts. Every forward returns logits: the six-architecture study's
log-softmax output gives the same probabilities, and Keras' softmax is the loss's business.

Where MODELS.md names only a block (`conv1`, `branch3x3`, `pathway2_conv1x1`, ...), the modules
inside it are an `nn.Sequential` numbered in PyTorch's way (`conv1.0` the conv, `conv1.1` its
batch norm), except GoogleNet's BasicConv2d, which names its two `conv` and `bn` as torchvision's
does. Spatial sizes are the studies' (flatten widths depend on them); channels and classes are
arguments.
"""
from typing import Callable, NamedTuple

import torch
from torch import nn


def softmax_model():
    class Softmax(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2304, 7)

        def forward(self, x):
            return self.linear(x.flatten(1))

    return Softmax()


def mlp_model(hidden=(128, 64), p=0.3):
    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.bn1 = nn.Linear(2304, hidden[0]), nn.BatchNorm1d(hidden[0])
            self.fc2, self.bn2 = nn.Linear(hidden[0], hidden[1]), nn.BatchNorm1d(hidden[1])
            self.fc3 = nn.Linear(hidden[1], 7)
            self.drop = nn.Dropout(p)

        def forward(self, x):
            x = self.drop(torch.relu(self.bn1(self.fc1(x.flatten(1)))))
            x = self.drop(torch.relu(self.bn2(self.fc2(x))))
            return self.fc3(x)

    return Mlp()


def cnn_model(channels=(64, 128, 512, 512), hidden=(256, 512), p=0.25):
    layers, c, side = [], 1, 48
    for i, out in enumerate(channels):
        k, pad = (5, 2) if i == 0 else (3, 1)
        layers += [nn.Conv2d(c, out, k, padding=pad), nn.BatchNorm2d(out), nn.ReLU(),
                   nn.MaxPool2d(2, 2), nn.Dropout(p)]
        c, side = out, side // 2
    layers.append(nn.Flatten())
    features = c * side * side
    for h in hidden:
        layers += [nn.Linear(features, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Dropout(p)]
        features = h
    layers.append(nn.Linear(features, 7))

    class Cnn(nn.Module):
        def __init__(self):
            super().__init__()
            self.network = nn.Sequential(*layers)

        def forward(self, x):
            return self.network(x)

    return Cnn()


# The six-architecture study (48×48 RGB, 7 classes). Batch norms and convs are PyTorch's
# defaults (conv bias on, eps 1e-5, momentum 0.1).


class BasicCnn(nn.Module):
    """Two conv-BN-ReLU-Dropout-MaxPool blocks, then fc1-BN-ReLU-Dropout and fc2."""

    def __init__(self, classes=7, in_channels=3, p=0.1):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(in_channels, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.conv2, self.bn2 = nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32)
        self.fc1, self.bn3 = nn.Linear(32 * 12 * 12, 256), nn.BatchNorm1d(256)
        self.fc2 = nn.Linear(256, classes)
        self.drop = nn.Dropout(p)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        # The study's order: dropout before the max pool.
        x = self.pool(self.drop(torch.relu(self.bn1(self.conv1(x)))))
        x = self.pool(self.drop(torch.relu(self.bn2(self.conv2(x)))))
        x = self.drop(torch.relu(self.bn3(self.fc1(x.flatten(1)))))
        return self.fc2(x)


class ResidualBlock(nn.Module):
    """out = ReLU(conv2(conv1(x)) + shortcut), the shortcut a 1×1 conv + BN (`downsample`)
    where the stride or the channel count changes, else x itself."""

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1),
                                   nn.BatchNorm2d(out_channels), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(out_channels, out_channels, 3, 1, 1),
                                   nn.BatchNorm2d(out_channels))
        # Reading: the study passes `downsample` into the block, which stores it after conv2,
        # so it comes last in the state_dict.
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride),
                                            nn.BatchNorm2d(out_channels))

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.relu(self.conv2(self.conv1(x)) + shortcut)


class ResNet(nn.Module):
    """The study's "ResNet(ResidualBlock, [2, 2, 2])": conv1 7×7/2 and a 3×3/2 max pool,
    layer0 at 64 channels (12×12), layer1 at 128 (stride 1), layer2 at 256 (stride 2, 6×6), a
    5×5 average pool to 2×2 and `fc`."""

    def __init__(self, classes=7, in_channels=3, blocks=(2, 2, 2)):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, 64, 7, 2, 3), nn.BatchNorm2d(64),
                                   nn.ReLU())
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer0 = self.layer(64, 64, blocks[0], stride=1)
        self.layer1 = self.layer(64, 128, blocks[1], stride=1)
        self.layer2 = self.layer(128, 256, blocks[2], stride=2)
        self.avgpool = nn.AvgPool2d(5, 1)
        self.fc = nn.Linear(256 * 2 * 2, classes)

    @staticmethod
    def layer(in_channels, out_channels, blocks, stride):
        first = ResidualBlock(in_channels, out_channels, stride)
        rest = [ResidualBlock(out_channels, out_channels) for _ in range(blocks - 1)]
        return nn.Sequential(first, *rest)

    def forward(self, x):
        x = self.maxpool(self.conv1(x))
        x = self.layer2(self.layer1(self.layer0(x)))
        return self.fc(self.avgpool(x).flatten(1))


class BasicConv2d(nn.Module):
    """GoogleNet's unit: conv (with its bias) → BatchNorm → ReLU, named as torchvision's."""

    def __init__(self, in_channels, out_channels, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride, padding)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """Four branches of 16 channels; the output concatenates the 3×3, 5×5 and 7×7 ones (48)."""

    BRANCH, REDUCED = 16, 32
    CHANNELS = 3 * BRANCH

    def __init__(self, in_channels):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, self.BRANCH, 1)
        self.branch3x3 = self.reduced_branch(in_channels, 3)
        self.branch5x5 = self.reduced_branch(in_channels, 5)
        self.branch7x7 = self.reduced_branch(in_channels, 7)

    @classmethod
    def reduced_branch(cls, in_channels, kernel):
        return nn.Sequential(BasicConv2d(in_channels, cls.REDUCED, 1),
                             BasicConv2d(cls.REDUCED, cls.BRANCH, kernel, padding=kernel // 2))

    def forward(self, x):
        # The study builds branch1x1 (its parameters are in every checkpoint) but leaves it out
        # of the concatenation; not running it changes no output.
        return torch.cat([self.branch3x3(x), self.branch5x5(x), self.branch7x7(x)], 1)


class InceptionTrunk(nn.Module):
    """What GoogleNet and NewNet share: conv1 (BasicConv2d 3×3 to 64), inception1, Dropout 0.1,
    inception2, Dropout 0.1; the two add their own ends."""

    def add_trunk(self, in_channels):
        self.conv1 = BasicConv2d(in_channels, 64, 3, padding=1)
        self.inception1 = Inception(64)
        self.inception2 = Inception(Inception.CHANNELS)
        self.drop = nn.Dropout(0.1)

    def trunk(self, x):
        x = self.drop(self.inception1(self.conv1(x)))
        return self.drop(self.inception2(x))


class GoogleNet(InceptionTrunk):
    """The study's GoogleNet variation: the inception trunk, global average pool, `fc`."""

    def __init__(self, classes=7, in_channels=3):
        super().__init__()
        self.add_trunk(in_channels)
        self.fc = nn.Linear(Inception.CHANNELS, classes)

    def forward(self, x):
        return self.fc(torch.mean(self.trunk(x), (2, 3)))


def double_conv(in_channels, out_channels):
    """Conv 3×3/p1, ReLU, conv 3×3/p1, ReLU: every U-Net block."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.ReLU())


class UNet(nn.Module):
    """Three encoder blocks (64-128-256, max pool 2 between), a 512 bottleneck at 6×6, three
    decoder blocks, each fed its transposed conv's output then the encoder skip of the same
    size; a 1×1 `outconv` to 16 channels, a 5×5/2 average pool (22×22) and `fc`."""

    def __init__(self, classes=7, in_channels=3):
        super().__init__()
        self.encoder1 = double_conv(in_channels, 64)
        self.encoder2 = double_conv(64, 128)
        self.encoder3 = double_conv(128, 256)
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = double_conv(256, 512)
        # Reading: each upconv is stored right before its decoder.
        self.upconv3, self.decoder3 = nn.ConvTranspose2d(512, 256, 2, 2), double_conv(512, 256)
        self.upconv2, self.decoder2 = nn.ConvTranspose2d(256, 128, 2, 2), double_conv(256, 128)
        self.upconv1, self.decoder1 = nn.ConvTranspose2d(128, 64, 2, 2), double_conv(128, 64)
        self.outconv = nn.Conv2d(64, 16, 1)
        self.avgpool = nn.AvgPool2d(5, 2)
        self.fc = nn.Linear(16 * 22 * 22, classes)

    def features(self, x):
        """Everything up to and including `outconv`: (16, 48, 48) for a 48×48 image."""
        skip1 = self.encoder1(x)
        skip2 = self.encoder2(self.pool(skip1))
        skip3 = self.encoder3(self.pool(skip2))
        x = self.bottleneck(self.pool(skip3))
        x = self.decoder3(torch.cat([self.upconv3(x), skip3], 1))
        x = self.decoder2(torch.cat([self.upconv2(x), skip2], 1))
        x = self.decoder1(torch.cat([self.upconv1(x), skip1], 1))
        return self.outconv(x)

    def forward(self, x):
        return self.fc(self.avgpool(self.features(x)).flatten(1))


class NewNet(InceptionTrunk):
    """The U-Net's features (`enc_dc`), the inception trunk, a 5×5/2 average pool, `conv3`
    (BasicConv2d 3×3/2 to 16 channels, 11×11) and `fc`."""

    def __init__(self, classes=7, in_channels=3):
        super().__init__()
        # enc_dc's avgpool and fc are built (fc's parameters are in every checkpoint) but
        # unused. Reading: the study builds enc_dc with the same class count as NewNet.
        self.enc_dc = UNet(classes, in_channels)
        self.add_trunk(16)
        self.avgpool = nn.AvgPool2d(5, 2)
        self.conv3 = BasicConv2d(Inception.CHANNELS, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16 * 11 * 11, classes)

    def forward(self, x):
        x = self.avgpool(self.trunk(self.enc_dc.features(x)))
        return self.fc(self.conv3(x).flatten(1))


def convs_with_relu(*layers):
    """An nn.Sequential of (in, out, kernel) convs, 'same' padding, each followed by ReLU."""
    modules = []
    for in_channels, out_channels, kernel in layers:
        modules += [nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2), nn.ReLU()]
    return nn.Sequential(*modules)


class RogleNet(nn.Module):
    """Three pathways (3×3 convs; 1×1 then 3×3; 1×1 then 5×5) concatenated to 256 channels and
    max-pooled to 24×24 (m); a residual r = m + residual_conv2(residual_conv1(m)); `fc`
    (Linear 512, ReLU, Dropout, Linear) on the flattened r."""

    def __init__(self, classes=7, in_channels=3, p=0.1):
        super().__init__()
        c = in_channels
        # Reading: the single-conv pathway blocks are Sequential(conv, ReLU) like the others
        # ("each conv followed by ReLU"), so their names are `pathway2_conv1x1.0.weight`, ...
        self.pathway1_conv = convs_with_relu((c, 32, 3), (32, 64, 3))
        self.pathway2_conv1x1 = convs_with_relu((c, 16, 1))
        self.pathway2_conv3x3 = convs_with_relu((16, 32, 3), (32, 64, 3))
        self.pathway3_conv1x1 = convs_with_relu((c, 32, 1))
        self.pathway3_conv5x5 = convs_with_relu((32, 64, 5), (64, 128, 5))
        self.pool = nn.MaxPool2d(2)
        self.residual_conv1 = nn.Sequential(nn.Conv2d(256, 128, 3, padding=1), nn.ReLU(),
                                            nn.Conv2d(128, 128, 3, padding=1))
        self.residual_conv2 = nn.Sequential(nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(),
                                            nn.Conv2d(128, 256, 3, padding=1))
        # The study computes final_cnn and discards its output (its parameters are in every
        # checkpoint); not running it changes no output.
        self.final_cnn = nn.Sequential(nn.Conv2d(256, 64, 3), nn.ReLU(), nn.Dropout(p))
        self.fc = nn.Sequential(nn.Linear(256 * 24 * 24, 512), nn.ReLU(), nn.Dropout(p),
                                nn.Linear(512, classes))

    def forward(self, x):
        m = self.pool(torch.cat([self.pathway1_conv(x),
                                 self.pathway2_conv3x3(self.pathway2_conv1x1(x)),
                                 self.pathway3_conv5x5(self.pathway3_conv1x1(x))], 1))
        r = m + self.residual_conv2(self.residual_conv1(m))
        return self.fc(r.flatten(1))


# The Keras CNN study (222×222 RGB, 6 classes).


class KerasCnn(nn.Module):
    """conv1 3×3 'same' to 32, then conv2-conv4 3×3 'valid' (64, 64, 64), each ReLU then max
    pool 2 (222 → 111 → 54 → 26 → 12); flatten 9216; fc1 128 ReLU, fc2 64 ReLU, fc3.

    Names are this twin's own (the study is Keras): `conv1`..`conv4`, `fc1`..`fc3`. Flatten is
    PyTorch's (channel, row, column) order, as fer's; a Keras checkpoint's Dense kernels would
    need transposing, and fc1's rows reordering from Keras' (row, column, channel)."""

    def __init__(self, classes=6, in_channels=3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.conv3 = nn.Conv2d(64, 64, 3)
        self.conv4 = nn.Conv2d(64, 64, 3)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(64 * 12 * 12, 128)
        self.fc2 = nn.Linear(128, 64)
        self.fc3 = nn.Linear(64, classes)

    def forward(self, x):
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            x = self.pool(torch.relu(conv(x)))
        x = torch.relu(self.fc2(torch.relu(self.fc1(x.flatten(1)))))
        return self.fc3(x)


# The real-time CNN study (48×48 grey, 7 classes).


class RealtimeCnn(nn.Module):
    """MODELS.md's sensible reading: four blocks (32, 64, 128, 256 channels) of two 3×3 'same'
    conv-BN-ReLU, max pool 2 and Dropout 0.3 between blocks, global average pool, fc1 128 ReLU,
    Dropout 0.3, fc2.

    Names are this twin's own (the study is Keras): `block1`..`block4`, each an nn.Sequential
    (`blockN.0` conv, `blockN.1` batch norm, `blockN.3` conv, `blockN.4` batch norm), then
    `fc1`, `fc2`. Readings: "between blocks" taken literally, so three pools (48 → 24 → 12 → 6)
    and the last block feeds the average pool at 6×6; convs keep Keras' bias; batch norms are
    PyTorch's (eps 1e-5, momentum 0.1, as fer's), not Keras' (eps 1e-3, momentum 0.99). The
    study's L2 penalty on the dense kernels is the trainer's business, not the module's."""

    def __init__(self, classes=7, in_channels=1, p=0.3):
        super().__init__()
        self.block1 = self.block(in_channels, 32)
        self.block2 = self.block(32, 64)
        self.block3 = self.block(64, 128)
        self.block4 = self.block(128, 256)
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout(p)
        self.fc1 = nn.Linear(256, 128)
        self.fc2 = nn.Linear(128, classes)

    @staticmethod
    def block(in_channels, out_channels):
        return nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels),
            nn.ReLU(), nn.Conv2d(out_channels, out_channels, 3, padding=1),
            nn.BatchNorm2d(out_channels), nn.ReLU())

    def forward(self, x):
        for block in (self.block1, self.block2, self.block3):
            x = self.drop(self.pool(block(x)))
        x = self.block4(x)
        x = self.drop(torch.relu(self.fc1(torch.mean(x, (2, 3)))))
        return self.fc2(x)


class Twin(NamedTuple):
    """A model at its study's defaults: build() makes it, for inputs of `input_shape`."""

    build: Callable[[], nn.Module]
    input_shape: tuple
    classes: int


GREY, RGB = (1, 48, 48), (3, 48, 48)
TWINS = {
    "softmax": Twin(softmax_model, GREY, 7),
    "mlp": Twin(mlp_model, GREY, 7),
    "cnn": Twin(cnn_model, GREY, 7),
    "basic_cnn": Twin(BasicCnn, RGB, 7),
    "resnet": Twin(ResNet, RGB, 7),
    "googlenet": Twin(GoogleNet, RGB, 7),
    "unet": Twin(UNet, RGB, 7),
    "newnet": Twin(NewNet, RGB, 7),
    "roglenet": Twin(RogleNet, RGB, 7),
    "keras_cnn": Twin(KerasCnn, (3, 222, 222), 6),
    "realtime_cnn": Twin(RealtimeCnn, GREY, 7),
}
