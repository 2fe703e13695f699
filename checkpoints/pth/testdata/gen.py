#!/usr/bin/env python3
"""Writes the PyTorch fixtures of package pth (and the fuzz seeds made from them).

Needs torch (Debian: apt-get install python3-torch); the Go tests do not. Run from this
directory:  python3 gen.py
Every value is a formula (arange), so the tests can check them without torch, and the
files stay a few KB.
"""
import argparse
import collections
import io
import json
import os
import sys
import types
import zipfile

import torch
import torch.nn as nn


def small_state_dict():
    """One of every case the reader handles."""
    sd = collections.OrderedDict()
    sd["conv.weight"] = torch.arange(108, dtype=torch.float32).reshape(4, 3, 3, 3) / 100
    sd["conv.bias"] = torch.tensor([0.5, -0.5, 1.5, -1.5])
    sd["bn.weight"] = torch.ones(4)
    sd["bn.bias"] = torch.zeros(4)
    sd["bn.running_mean"] = torch.arange(4, dtype=torch.float32)
    sd["bn.running_var"] = torch.arange(1, 5, dtype=torch.float32)
    sd["bn.num_batches_tracked"] = torch.tensor(7)
    sd["half"] = (torch.arange(5, dtype=torch.float32) / 4 - 0.5).half()
    sd["bf16"] = (torch.arange(5, dtype=torch.float32) * 2 - 3).bfloat16()
    sd["double"] = torch.arange(6, dtype=torch.float64).reshape(2, 3) / 3
    sd["transposed"] = torch.arange(12, dtype=torch.float32).reshape(4, 3).t()  # strided view
    base = torch.arange(10, dtype=torch.float32)
    sd["slice_a"] = base[2:5]  # two views of one storage, with offsets
    sd["slice_b"] = base[6:10]
    sd["scalar"] = torch.tensor(3.25)
    sd["long"] = torch.tensor([1, -2, 3])
    return sd


def values(t):
    return [float(v) if t.is_floating_point() else int(v) for v in t.contiguous().reshape(-1).tolist()]


# ---- the reference models' naming (vggo's parameter names): a VGG16 with batch norm,
# laid out as torchvision's vgg16_bn (features.N conv, bn, relu, ..., pool), flattening
# straight into classifier.0 as vggo does for a non-224 input.
VGG16_CFG = [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M']


class VGGBN(nn.Module):
    def __init__(self, num_classes, size, width_div):
        super().__init__()
        layers, c = [], 3
        for v in VGG16_CFG:
            if v == 'M':
                layers.append(nn.MaxPool2d(2, 2))
            else:
                v = v // width_div
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                c = v
        self.features = nn.Sequential(*layers)
        s = size // 32
        fc = 4096 // width_div
        self.classifier = nn.Sequential(
            nn.Linear(c * s * s, fc), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(fc, fc), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(fc, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def fake_torchvision_vgg():
    """A class that pickles as torchvision.models.vgg.VGG (torchvision is not needed)."""
    for name in ["torchvision", "torchvision.models", "torchvision.models.vgg"]:
        sys.modules.setdefault(name, types.ModuleType(name))

    class VGG(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 2, 3))

    VGG.__module__ = "torchvision.models.vgg"
    VGG.__qualname__ = "VGG"
    sys.modules["torchvision.models.vgg"].VGG = VGG
    return VGG()


class Evil:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


def fuzz_seed(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        quoted = "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else "\\x%02x" % b for b in data)
        f.write('go test fuzz v1\n[]byte("%s")\n' % quoted)


def main():
    torch.manual_seed(0)
    sd = small_state_dict()
    torch.save(sd, "state_dict.pth")
    torch.save(sd, "state_dict_legacy.pth", _use_new_zipfile_serialization=False)
    with open("state_dict.json", "w") as f:
        json.dump({k: {"shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", ""), "values": values(v)}
                   for k, v in sd.items()}, f, indent=0)

    model = nn.Sequential(collections.OrderedDict(conv=nn.Conv2d(3, 4, 3), bn=nn.BatchNorm2d(4)))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 5, 5)).sum().backward()
    opt.step()
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3,
                "args": argparse.Namespace(lr=0.1, model="vgg16")}, "checkpoint.pth")
    ddp = collections.OrderedDict(("module." + k, v) for k, v in model.state_dict().items())
    torch.save({"state_dict": ddp}, "dataparallel.pth")

    torch.save(fake_torchvision_vgg(), "module.pth")
    torch.save({"weights": Evil()}, "evil.pth")
    torch.save([torch.ones(2)], "list.pth")
    torch.save({"w": torch.tensor([1.0, float("nan"), float("inf")])}, "nonfinite.pth")

    # A tiny vgg16-bn (width 1/64, 32x32 input, 10 classes) with trained-looking batch
    # norm statistics, and its eval-mode logits on a fixed input: vggo must compute the
    # same.
    net = VGGBN(10, 32, 64)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
            if isinstance(m, nn.Conv2d):
                m.bias.uniform_(-0.1, 0.1)
    net.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        y = net(x)
    torch.save(net.state_dict(), "vgg16_bn_w64.pth")
    torch.save({"input": x, "logits": y}, "vgg16_bn_w64_io.pth")

    for name in ["state_dict.pth", "checkpoint.pth", "module.pth", "evil.pth", "vgg16_bn_w64.pth"]:
        with zipfile.ZipFile(name) as z:
            pkl = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
            fuzz_seed("fuzz/FuzzPickle/" + name.replace(".pth", ""), z.read(pkl))


if __name__ == "__main__":
    main()
