"""The PyTorch modules equivalent to fer's models, with the same state_dict names, so a fer
checkpoint loads into them and the two can be compared number for number."""
import torch
from torch import nn

CLASSES = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


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
