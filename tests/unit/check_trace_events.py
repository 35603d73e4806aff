#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Checks a Chrome trace-event JSON file, as 'hmmprof run --perfetto' writes.

    check_trace_events.py FILE [--timeline]
    check_trace_events.py --generate PROGRAM [--timeline]

The structure that ui.perfetto.dev and chrome://tracing need (the JSON
object format of the Trace Event Format):

 - a JSON object with a "traceEvents" list (and "displayTimeUnit" ns|ms);
 - every event an object with a known "ph" and integer "pid" and "tid";
 - "X" (complete) events: a string "name", numeric "ts" and "dur" >= 0;
   on each track (pid, tid) in file order, "ts" never goes back and the
   slices nest (a slice that starts inside another ends inside it);
 - "i" (instant) events: "ts" and a scope "s" of g, p or t;
 - "C" (counter) events: "ts" and "args" of numbers; per counter
   (pid, name) "ts" never goes back;
 - "M" (metadata) events: a known name and its argument;
 - "args", when present, an object.

--timeline also asks for what hmmprof's timeline must show: at least one
kernel slice (cat "kernel") and one migration slice (cat "migration"),
named tracks for every process and device, and migrations that start
within the span of the program's slices (one time axis).

--generate runs PROGRAM --perfetto TMPFILE first and checks TMPFILE.
Exits 0 when the file is fine, 1 with one line per problem otherwise.
"""
import json
import os
import subprocess
import sys
import tempfile

PHASES = {'X', 'B', 'E', 'i', 'I', 'C', 'M', 'b', 'e', 'n', 's', 't', 'f'}
META = {'process_name': 'name', 'thread_name': 'name',
        'process_sort_index': 'sort_index', 'thread_sort_index': 'sort_index',
        'process_labels': 'labels'}


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check(path, timeline):
    problems = []

    def bad(i, why):
        if len(problems) < 50:
            problems.append('event %d: %s' % (i, why))

    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        return ['cannot read %s as JSON: %s' % (path, e)]
    if not isinstance(doc, dict) or not isinstance(doc.get('traceEvents'),
                                                   list):
        return ['not an object with a "traceEvents" list']
    if doc.get('displayTimeUnit', 'ms') not in ('ms', 'ns'):
        problems.append('displayTimeUnit is neither "ms" nor "ns"')
    events = doc['traceEvents']
    stacks = {}      # (pid, tid) -> [end of each open slice]
    last_ts = {}     # (pid, tid) -> ts of the last X
    counters = {}    # (pid, name) -> ts of the last sample
    named = set()    # pids with a process_name
    cats = {}
    for i, e in enumerate(events):
        if not isinstance(e, dict):
            bad(i, 'not an object')
            continue
        ph = e.get('ph')
        if ph not in PHASES:
            bad(i, 'unknown ph %r' % (ph,))
            continue
        if not isinstance(e.get('pid'), int) or not isinstance(e.get('tid'),
                                                               int):
            bad(i, 'pid and tid must be integers')
            continue
        if 'args' in e and not isinstance(e['args'], dict):
            bad(i, '"args" is not an object')
            continue
        if not isinstance(e.get('name'), str) or not e['name']:
            bad(i, 'no name')
            continue
        if ph == 'M':
            key = META.get(e['name'])
            if key is None or key not in e.get('args', {}):
                bad(i, 'metadata %r without its argument' % e['name'])
            elif e['name'] == 'process_name':
                named.add(e['pid'])
            continue
        ts = e.get('ts')
        if not is_num(ts) or ts < 0:
            bad(i, '"ts" is not a number >= 0')
            continue
        track = (e['pid'], e['tid'])
        if ph == 'X':
            dur = e.get('dur')
            if not is_num(dur) or dur < 0:
                bad(i, '"dur" is not a number >= 0')
                continue
            if ts < last_ts.get(track, 0):
                bad(i, 'ts %s goes back on track %s' % (ts, track))
            last_ts[track] = ts
            stack = stacks.setdefault(track, [])
            while stack and stack[-1] <= ts:
                stack.pop()
            if stack and ts + dur > stack[-1] + 1e-6:
                bad(i, 'slice %r [%s, %s] overlaps the end %s of the slice '
                    'it starts in' % (e['name'], ts, ts + dur, stack[-1]))
            stack.append(ts + dur)
            cat = e.get('cat', '')
            cats.setdefault(cat, []).append((e['pid'], ts, ts + dur))
        elif ph in ('i', 'I'):
            if e.get('s', 't') not in ('g', 'p', 't'):
                bad(i, 'instant scope %r' % (e.get('s'),))
        elif ph == 'C':
            args = e.get('args')
            if not args or not all(is_num(v) for v in args.values()):
                bad(i, 'counter without numeric args')
            key = (e['pid'], e['name'])
            if ts < counters.get(key, 0):
                bad(i, 'counter %r goes back in time' % e['name'])
            counters[key] = ts
    if timeline:
        if not cats.get('kernel'):
            problems.append('no kernel slice (cat "kernel")')
        if not cats.get('migration'):
            problems.append('no migration slice (cat "migration")')
        pids = {p for slices in cats.values() for p, _, _ in slices}
        for pid in sorted(pids - named):
            problems.append('process %d has no process_name' % pid)
        if cats.get('kernel') and cats.get('migration'):
            prog = [s for c, v in cats.items() if c != 'migration'
                    for s in v]
            lo = min(s[1] for s in prog)
            hi = max(s[2] for s in prog)
            if not any(lo <= s[1] <= hi for s in cats['migration']):
                problems.append('no migration starts within the span of the '
                                'program\'s slices: not one time axis?')
    return problems


def main(argv):
    timeline = '--timeline' in argv
    args = [a for a in argv if a != '--timeline']
    if len(args) == 2 and args[0] == '--generate':
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, 'trace.json')
            rc = subprocess.run([args[1], '--perfetto', path]).returncode
            if rc != 0:
                print('%s --perfetto failed with status %d' % (args[1], rc))
                return 1
            problems = check(path, timeline)
    elif len(args) == 1:
        problems = check(args[0], timeline)
    else:
        print(__doc__.strip().split('\n\n')[1])
        return 2
    for p in problems:
        print(p)
    if not problems:
        print('trace events are well-formed')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
