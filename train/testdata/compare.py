"""vggo against PyTorch on the same machine, in one run: the table of issue #18.

For each round and configuration, `vggo bench --config C --train-only --json` and then
torch_bench.py with tcmalloc and the faster memory format (--tcmalloc --memory-format
best), each in its own process, so that the two alternate and a drift of the machine's
speed touches both. A configuration's rate is the best of its rounds for either side;
peak RSS is the process's maximum.

    go build -o /tmp/vggo ./cmd/vggo
    /usr/bin/python3 train/testdata/compare.py --vggo /tmp/vggo --configs C1,C4,C6s,C6u --rounds 2

--json prints the raw results.
"""
import argparse
import json
import os
import subprocess
import sys

# Steps per configuration (timed, warm-up): the large ones take seconds a step.
STEPS = {'C1': (6, 2), 'C2': (6, 2), 'C3': (6, 2), 'C7s': (3, 1), 'C7u': (3, 1)}


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out[out.index('{'):])


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument('--vggo', required=True, help='the vggo binary')
    ap.add_argument('--configs', default='C1,C2,C3,C4,C5,C6s,C6u')
    ap.add_argument('--rounds', type=int, default=2)
    ap.add_argument('--json', action='store_true')
    a = ap.parse_args()
    results = {}
    for rnd in range(a.rounds):
        for c in a.configs.split(','):
            steps, warm = STEPS.get(c, (10, 2))
            common = ['--config', c, '--steps', str(steps), '--warmup', str(warm)]
            vcmd = [a.vggo, 'bench'] + common + ['--train-only', '--json']
            tcmd = [sys.executable, os.path.join(here, 'torch_bench.py')] + common + [
                '--tcmalloc', '--memory-format', 'best', '--json']
            v, t = run_json(vcmd), run_json(tcmd)
            r = results.setdefault(c, {'vggo': [], 'torch': []})
            r['vggo'].append(v)
            r['torch'].append(t)
            print(f"round {rnd + 1} {c}: vggo {v['train_images_per_s']:.3f} img/s, "
                  f"torch {t['images_per_s']:.3f} img/s ({t['memory_format']})", file=sys.stderr)
    if a.json:
        json.dump(results, sys.stdout)
        print()
        return
    first = next(iter(results.values()))['vggo'][0]
    ghz = [v['cpu_ghz'] for r in results.values() for v in r['vggo'] if v.get('cpu_ghz')]
    print(f"cpu: {first.get('cpu', '?')}, measured {min(ghz, default=0):.2f}-{max(ghz, default=0):.2f} GHz; "
          f"{first['threads']} threads; best of {a.rounds} rounds")
    print()
    print('| config | vggo img/s | torch img/s (layout) | vggo / torch | peak RSS vggo / torch MiB |')
    print('|---|---|---|---|---|')
    for c, r in results.items():
        v = max(r['vggo'], key=lambda x: x['train_images_per_s'])
        t = max(r['torch'], key=lambda x: x['images_per_s'])
        vr = max(x['peak_rss_mib'] for x in r['vggo'])
        tr = max(x['peak_rss_mib'] for x in r['torch'])
        print(f"| {c} | {v['train_images_per_s']:.3f} | {t['images_per_s']:.3f} ({t['memory_format']}) | "
              f"{v['train_images_per_s'] / t['images_per_s']:.2f} | {vr:.0f} / {tr:.0f} |")


if __name__ == '__main__':
    main()
