#!/usr/bin/env python3
"""ab.py A_BENCH_DIR B_BENCH_DIR ROUNDS SCRATCH -- run the benchmarks of two
builds in interleaved rounds and print medians and B/A ratios (see
scripts/bench-ab.sh)."""
import json
import statistics
import subprocess
import sys


def run(prog, args):
    subprocess.run([prog] + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True)


def one_round(bdir, tag, scratch, res):
    def add(k, x):
        res.setdefault(k, []).append(x)

    run(f'{bdir}/statebench', ['--quick', '--json', f'{scratch}/s-{tag}.json'])
    d = json.load(open(f'{scratch}/s-{tag}.json'))
    add('state spin one-way p50 ns', d['state_spin_oneway_ns'][0])
    add('state park one-way p50 ns', d['state_park_oneway_ns'][0])
    add('state spin / raw line p50 (same blocks)', d['spin_over_raw_p50'])
    add('state park / bare futex p50 (same blocks)', d['park_over_futex_p50'])
    run(f'{bdir}/ipcbench', ['--only', 'shmbus', '--tests', 'pingpong,oneway', '--sizes', '8,4K',
                             '--runs', '3', '--time', '0.3', '--results', f'{scratch}/i-{tag}'])
    for r in json.load(open(f'{scratch}/i-{tag}/ipcbench.json'))['results']:
        if r['status'] != 'ok':
            continue
        if r['test'] == 'pingpong':
            add(f"queue ping-pong {r['size']} B p50 ns", r['rtt_ns']['p50'])
        else:
            add(f"queue one-way {r['size']} B msgs/s", r['msgs_per_s'])
    run(f'{bdir}/queuebench', ['--runs', '3', '--json', f'{scratch}/q-{tag}.json'])
    for r in json.load(open(f'{scratch}/q-{tag}.json'))['mpmc']:
        if r['status'] == 'ok':
            add(f"queuebench {r['name']} msgs/s", r['delivered_msgs_per_s'])


def main():
    a, b, rounds, scratch = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    res = {'A': {}, 'B': {}}
    for i in range(rounds):
        for tag, bdir in ((('A', a), ('B', b)) if i % 2 == 0 else (('B', b), ('A', a))):
            one_round(bdir, tag, scratch, res[tag])
    print(f'{rounds} interleaved rounds; medians; for ns lower is better, for msgs/s higher')
    print(f"  {'figure':52s} {'A':>11s} {'B':>11s} {'B/A':>7s}")
    for k in res['A']:
        x = statistics.median(res['A'][k])
        y = statistics.median(res['B'].get(k, [float('nan')]))
        print(f'  {k:52s} {x:11.4g} {y:11.4g} {y / x:7.3f}')


if __name__ == '__main__':
    main()
