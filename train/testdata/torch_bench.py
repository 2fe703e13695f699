"""PyTorch side of `vggo bench`: times the same configurations on the same machine.

Run with Debian's python3-torch, one configuration and phase per process (peak RSS is the
process's maximum):

    /usr/bin/python3 train/testdata/torch_bench.py --config C6s --phase train
    /usr/bin/python3 train/testdata/torch_bench.py --config C1 --phase infer --json

Training is torch.optim.SGD(lr=1e-3) on a fixed random batch with CrossEntropyLoss
(ignore_index=255), zero_grad/forward/backward/step; inference is model.eval() under
torch.inference_mode(). Rates are medians over --steps steps after --warmup. The models
come from ../shared/reference/torch_models.py (override with --models).
"""
import argparse
import importlib.util
import json
import os
import resource
import statistics
import sys
import time

import torch

PRESETS = {  # name: (model, size, train batch, inference batch, width_div, classes)
    'C1': ('vgg16', 224, 4, 8, 1, 1000),
    'C2': ('vgg19', 224, 4, 4, 1, 1000),
    'C3': ('alexnet', 224, 16, 16, 1, 1000),
    'C4': ('vgg16_segnet', 256, 2, 2, 1, 21),
    'C5': ('vgg19_unet', 256, 2, 2, 1, 21),
    'C6s': ('vgg16_segnet', 128, 4, 4, 4, 21),
    'C6u': ('vgg19_unet', 128, 4, 4, 4, 21),
}


def load_models(path):
    spec = importlib.util.spec_from_file_location('torch_models', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument('--config', default='C6s', choices=sorted(PRESETS))
    ap.add_argument('--phase', default='train', choices=['train', 'infer'])
    ap.add_argument('--steps', type=int, default=10)
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--models', default=os.path.join(here, '../../../shared/reference/torch_models.py'))
    ap.add_argument('--json', action='store_true')
    ap.add_argument('--channels-last', action='store_true',
                    help='run the model and input in torch.channels_last (oneDNN NHWC) memory format')
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    tm = load_models(a.models)
    name, size, tb, ib, div, ncls = PRESETS[a.config]
    model = tm.MODELS[name](num_classes=ncls, size=size, width_div=div)
    seg = name in tm.SEGMENTATION
    batch = tb if a.phase == 'train' else ib
    x = torch.randn(batch, 3, size, size)
    if seg:
        y = torch.randint(0, ncls, (batch, size, size))
    else:
        y = torch.randint(0, ncls, (batch,))
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    times = []
    if a.phase == 'train':
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        lossf = torch.nn.CrossEntropyLoss(ignore_index=255)
        for i in range(a.warmup + a.steps):
            t0 = time.perf_counter()
            opt.zero_grad()
            loss = lossf(model(x), y)
            loss.backward()
            opt.step()
            if i >= a.warmup:
                times.append(time.perf_counter() - t0)
    else:
        model.eval()
        with torch.inference_mode():
            for i in range(a.warmup + a.steps):
                t0 = time.perf_counter()
                model(x)
                if i >= a.warmup:
                    times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB
    res = {'config': a.config, 'phase': a.phase, 'model': name, 'batch': batch, 'size': size,
           'width_div': div, 'threads': a.threads, 'torch': torch.__version__,
           'step_ms': med * 1e3, 'images_per_s': batch / med, 'peak_rss_mib': rss,
           'steps_ms': [t * 1e3 for t in times]}
    if a.json:
        json.dump(res, sys.stdout)
        print()
    else:
        print(f"torch {a.config} {a.phase}: {med*1e3:.1f} ms/step, {batch/med:.2f} images/s, peak RSS {rss:.0f} MiB")


if __name__ == '__main__':
    main()
