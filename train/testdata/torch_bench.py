"""PyTorch side of `vggo bench`: times the same configurations on the same machine.

Run with Debian's python3-torch, one configuration and phase per process (peak RSS is the
process's maximum):

    /usr/bin/python3 train/testdata/torch_bench.py --config C6s --phase train
    /usr/bin/python3 train/testdata/torch_bench.py --config C1 --phase infer --json

The fair comparison, as PyTorch's CPU performance guide tunes it: tcmalloc preloaded
(--tcmalloc re-executes the script with LD_PRELOAD of Debian's libtcmalloc-minimal4) and
the faster memory format (--memory-format best times NCHW and channels-last, each in its
own process, and reports the faster, with both rates):

    /usr/bin/python3 train/testdata/torch_bench.py --config C4 --tcmalloc --memory-format best --json

--precision bf16 runs the step under torch.cpu.amp.autocast(dtype=torch.bfloat16).

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
    'C7s': ('vgg16_segnet', 512, 8, 8, 1, 21),
    'C7u': ('vgg19_unet', 512, 8, 8, 1, 21),
}

TCMALLOC = '/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4'


def with_tcmalloc():
    """Re-executes this process with tcmalloc preloaded, unless it already is."""
    if TCMALLOC in os.environ.get('LD_PRELOAD', ''):
        return
    if not os.path.exists(TCMALLOC):
        sys.exit(f'--tcmalloc: {TCMALLOC} not found (apt-get install libtcmalloc-minimal4)')
    env = dict(os.environ, LD_PRELOAD=(TCMALLOC + ' ' + os.environ.get('LD_PRELOAD', '')).strip())
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


def best_format(argv):
    """Runs the benchmark once per memory format, each in its own process, and returns
    the faster result with the other rates under 'formats'."""
    import subprocess
    base, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == '--memory-format':
            skip = True
        elif not arg.startswith('--memory-format='):
            base.append(arg)
    runs = {}
    for fmt in ('nchw', 'channels-last'):
        out = subprocess.run([sys.executable, os.path.abspath(__file__)] + base +
                             ['--memory-format', fmt, '--json'], check=True,
                             capture_output=True, text=True).stdout
        runs[fmt] = json.loads(out.strip().splitlines()[-1])
    best = max(runs.values(), key=lambda r: r['images_per_s'])
    best['formats'] = {f: {'images_per_s': r['images_per_s'], 'peak_rss_mib': r['peak_rss_mib']}
                       for f, r in runs.items()}
    return best


def cpu_model():
    """The processor's model name from /proc/cpuinfo, as vggo bench reports it."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                key, _, val = line.partition(':')
                if key.strip() == 'model name' and val.strip():
                    return val.strip()
    except OSError:
        pass
    return 'unknown'


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
    ap.add_argument('--memory-format', default='nchw', choices=['nchw', 'channels-last', 'best'],
                    help='best: time both, each in its own process, and report the faster')
    ap.add_argument('--tcmalloc', action='store_true', help='preload tcmalloc (re-executes the script)')
    ap.add_argument('--precision', default='fp32', choices=['fp32', 'bf16'],
                    help='bf16: the step under torch.cpu.amp.autocast(dtype=torch.bfloat16)')
    a = ap.parse_args()
    if a.tcmalloc:
        with_tcmalloc()
    if a.memory_format == 'best':
        res = best_format(sys.argv[1:])
        if a.json:
            json.dump(res, sys.stdout)
            print()
        else:
            rates = ', '.join(f"{k} {v['images_per_s']:.2f}" for k, v in res['formats'].items())
            print(f"torch {a.config} {a.phase}: {res['memory_format']} is faster: {res['step_ms']:.1f} ms/step, "
                  f"{res['images_per_s']:.2f} images/s, peak RSS {res['peak_rss_mib']:.0f} MiB ({rates})")
        return
    a.channels_last = a.channels_last or a.memory_format == 'channels-last'

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

    def autocast():
        return torch.cpu.amp.autocast(enabled=a.precision == 'bf16', dtype=torch.bfloat16)

    times = []
    if a.phase == 'train':
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        lossf = torch.nn.CrossEntropyLoss(ignore_index=255)
        for i in range(a.warmup + a.steps):
            t0 = time.perf_counter()
            opt.zero_grad()
            with autocast():
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
                with autocast():
                    model(x)
                if i >= a.warmup:
                    times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB
    res = {'config': a.config, 'phase': a.phase, 'model': name, 'batch': batch, 'size': size, 'cpu': cpu_model(),
           'width_div': div, 'threads': a.threads, 'torch': torch.__version__,
           'memory_format': 'channels-last' if a.channels_last else 'nchw', 'precision': a.precision,
           'tcmalloc': TCMALLOC in os.environ.get('LD_PRELOAD', ''),
           'step_ms': med * 1e3, 'images_per_s': batch / med, 'peak_rss_mib': rss,
           'steps_ms': [t * 1e3 for t in times]}
    if a.json:
        json.dump(res, sys.stdout)
        print()
    else:
        print(f"torch {a.config} {a.phase}: {med*1e3:.1f} ms/step, {batch/med:.2f} images/s, peak RSS {rss:.0f} MiB")


if __name__ == '__main__':
    main()
