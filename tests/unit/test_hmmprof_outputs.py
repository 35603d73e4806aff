#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A failed 'hmmprof run' leaves existing output files as they were.

The outputs are written under temporary names and renamed only when the
profile is complete.  Here the run fails because the host has no hmmgpu
device; with one, the run succeeds and the test is skipped (77).
"""
import os
import subprocess
import sys
import tempfile

FILES = ['out.json', 'out.csv', 'out.svg', 'out.html', 'summary.txt']


def main():
    hmmprof = sys.argv[1]
    with tempfile.TemporaryDirectory() as d:
        for f in FILES:
            with open(os.path.join(d, f), 'w') as o:
                o.write('previous ' + f)
        p = lambda f: os.path.join(d, f)
        rc = subprocess.run([hmmprof, 'run', '--json', p('out.json'),
                             '--csv', p('out.csv'), '--svg', p('out.svg'),
                             '--html', p('out.html'), '-o', p('summary.txt'),
                             '--', 'true'],
                            stderr=subprocess.DEVNULL).returncode
        if rc == 0:
            print('hmmprof ran (a device is there): nothing to check')
            return 77
        status = 0
        for f in FILES:
            with open(p(f)) as i:
                if i.read() != 'previous ' + f:
                    print('%s was changed by a failed run (exit %d)' % (f, rc))
                    status = 1
        left = sorted(set(os.listdir(d)) - set(FILES))
        if left:
            print('temporary files left behind:', ' '.join(left))
            status = 1
        return status


sys.exit(main())
