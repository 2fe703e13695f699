"""Compare vggo's dumped logits and gradients with the PyTorch reference models.

    go test -tags torchcheck ./tools/torchcheck && python3 tools/torchcheck/compare.py

Needs torch (Debian: python3-torch). Loads the same weights into
../shared/reference/torch_models.py by state_dict order, runs evaluation and one training
forward/backward with cross-entropy (ignore_index=255), and prints max |difference|
relative to the largest value, for the loss, the eval logits, every gradient and the
batch-norm running statistics. Each should be ~1e-6 in float32; the upsampling SegNet's
gradients are ill-conditioned at this size (torch float32 differs from torch float64 by
~1e-2 there too), so compare.py also reports the float64 reference for it.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
for p in [os.path.join(here, '..', '..', '..', 'shared', 'reference'), os.path.join(here, '..', '..', 'reference')]:
    sys.path.insert(0, p)
import torch_models as tm  # noqa: E402

torch.set_num_threads(2)
D = os.environ.get('TORCHCHECK_DIR', '/tmp/vggo-torchcheck')


class SegNetIndices(torch.nn.Module):
    """vgg16_segnet with max-unpooling by the encoder's indices instead of upsampling."""

    def __init__(self):
        super().__init__()
        self.m = tm.vgg16_segnet(width_div=8)

    def forward(self, x):
        idx, sizes = [], []
        for layer in self.m.encoder:
            if isinstance(layer, torch.nn.MaxPool2d):
                sizes.append(x.shape[-2:])
                x, i = F.max_pool2d(x, 2, 2, return_indices=True)
                idx.append(i)
            else:
                x = layer(x)
        for layer in self.m.decoder:
            if isinstance(layer, torch.nn.Upsample):
                x = F.max_unpool2d(x, idx.pop(), 2, 2, output_size=sizes.pop())
            else:
                x = layer(x)
        return x


CASES = [
    ('vgg16', lambda: tm.vgg16(num_classes=10, size=64, width_div=8), 3, 64, 64, False),
    ('alexnet', lambda: tm.alexnet(num_classes=10, size=99, width_div=8), 3, 99, 99, False),
    ('segnet', lambda: tm.vgg16_segnet(width_div=8), 2, 64, 96, True),
    ('segnet-indices', SegNetIndices, 2, 64, 96, True),
    ('unet', lambda: tm.vgg19_unet(width_div=8), 2, 48, 80, True),
]


def load(name, dtype, mk):
    top = mk()
    m = top.m if isinstance(top, SegNetIndices) else top
    for mod in m.modules():
        if isinstance(mod, torch.nn.Dropout):
            mod.p = 0.0
    p = np.fromfile(f'{D}/{name}.params', dtype=np.float32)
    off = 0
    for k, v in m.state_dict().items():
        if k.endswith('num_batches_tracked'):
            continue
        n = v.numel()
        v.copy_(torch.from_numpy(p[off:off + n]).view(v.shape))
        off += n
    assert off == len(p), (name, off, len(p))
    return top.to(dtype), m


def rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


for name, mk, n, h, w, seg in CASES:
    x = np.fromfile(f'{D}/{name}.input', dtype=np.float32).reshape(n, 3, h, w)
    lab = torch.from_numpy(np.fromfile(f'{D}/{name}.labels', dtype=np.int64))
    lab = lab.view(n, h, w) if seg else lab.view(n)
    out = {}
    for dtype in [torch.float32, torch.float64]:
        top, m = load(name, dtype, mk)
        xt = torch.from_numpy(x).to(dtype)
        with torch.no_grad():
            ev = top.eval()(xt).double().numpy().ravel()
        top.train()
        loss = F.cross_entropy(top(xt), lab, ignore_index=255)
        loss.backward()
        grads = np.concatenate([q.grad.double().numpy().ravel() for q in m.parameters()])
        bufs = [v.double().numpy().ravel() for k, v in m.state_dict().items() if 'running' in k]
        out[dtype] = (ev, loss.item(), grads, np.concatenate(bufs) if bufs else None)
    ev32, loss32, g32, b32 = out[torch.float32]
    ev64, loss64, g64, b64 = out[torch.float64]
    gev = np.fromfile(f'{D}/{name}.eval', dtype=np.float32)
    gg = np.fromfile(f'{D}/{name}.grads', dtype=np.float32)
    gl = np.fromfile(f'{D}/{name}.loss', dtype=np.float64)[0]
    line = (f'{name:15s} loss vggo {gl:.6f} torch {loss32:.6f} | eval logits {rel(gev, ev64):.1e} | '
            f'grads vggo {rel(gg, g64):.1e} torch32 {rel(g32, g64):.1e} (vs float64)')
    if b32 is not None:
        gb = np.fromfile(f'{D}/{name}.buffers', dtype=np.float32)
        line += f' | running stats {rel(gb, b32):.1e}'
    print(line)
