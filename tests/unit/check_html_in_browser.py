#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""hmmprof's HTML report, rendered by a real browser (headless Chromium).

    check_html_in_browser.py --generate PROGRAM
    check_html_in_browser.py FILE

Runs PROGRAM --html TMPFILE (the hmmprof_timeline test binary writes the
report of its synthetic profile), then loads the page in headless
Chromium, offline (no network is needed or used):

 - --dump-dom: the DOM Chromium built has the summary (a non-empty
   <pre id="summary"> naming the allocations), one <svg> with both
   direction lines of the migration plot (polylines with at least two
   points), the timeline with a stream lane holding a kernel and a device
   lane holding migrations and a device fault, a fault latency histogram
   with CPU and device bars, and a residency map with host and device
   cells;
 - the browser's log (--enable-logging=stderr): no console message of
   level error, no uncaught exception, no failed resource load;
 - --screenshot: the page is drawn: the plots' colours (the blue of
   to_device, the orange of to_host, the grey of host cells, the green of
   kernels, the red of device faults, the purple of CPU fault latencies)
   are in the picture, and the picture is not blank.

Exits 77 (skipped) when Chromium is not installed (Debian: chromium,
which tools/install-deps installs), 1 with one line per problem.
"""
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

BROWSERS = ('chromium', 'chromium-browser', 'google-chrome')
# the plot colours of tools/hmmprof/plot.c
COLOURS = {'to_device line': (0x1f, 0x77, 0xb4),
           'to_host line': (0xff, 0x7f, 0x0e),
           'host cells': (0xb8, 0xb8, 0xb8),
           'kernels of the timeline': (0x2c, 0xa0, 0x2c),
           'CPU fault latency bars': (0x94, 0x67, 0xbd),
           'device faults of the timeline': (0xd6, 0x27, 0x28)}


def browser():
    for b in BROWSERS:
        path = shutil.which(b)
        if path:
            return path
    return None


def run_browser(chrome, profile, args, timeout=120):
    cmd = [chrome, '--headless', '--disable-gpu', '--no-sandbox',
           '--no-first-run', '--no-default-browser-check',
           '--disable-extensions', '--disable-background-networking',
           '--disable-component-update', '--disable-sync',
           '--user-data-dir=' + profile, '--enable-logging=stderr',
           '--v=0'] + args
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, text=True, errors='replace')


def png_pixels(path):
    """(width, height, rows of RGB tuples) of an 8-bit RGB/RGBA PNG."""
    with open(path, 'rb') as f:
        data = f.read()
    if data[:8] != b'\x89PNG\r\n\x1a\n':
        raise ValueError('not a PNG')
    pos, idat, w = 8, b'', None
    while pos < len(data):
        n, kind = struct.unpack('>I4s', data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b'IHDR':
            w, h, depth, ctype, _, _, interlace = struct.unpack('>IIBBBBB',
                                                                body)
            if depth != 8 or ctype not in (2, 6) or interlace:
                raise ValueError('PNG of an unexpected kind')
            bpp = 3 if ctype == 2 else 4
        elif kind == b'IDAT':
            idat += body
        elif kind == b'IEND':
            break
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xff
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xff
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xff
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pr = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pr) & 0xff
        rows.append([tuple(line[i:i + 3]) for i in range(0, stride, bpp)])
        prev = line
    return w, h, rows


def check_dom(dom):
    problems = []
    summary = re.search(r'<pre id="summary">(.*?)</pre>', dom, re.S)
    if not summary or len(summary.group(1).strip()) < 100:
        problems.append('the summary is missing or empty')
    elif 'Allocations, by time migrating' not in summary.group(1):
        problems.append('the summary has no allocation table')
    if dom.count('<svg') != 1:
        problems.append('%d <svg> elements, not 1' % dom.count('<svg'))
    for d in ('to_device', 'to_host'):
        m = re.search(r'<polyline id="%s"[^>]*points="([^"]*)"' % d, dom)
        if not m or len(m.group(1).split()) < 2:
            problems.append('the %s line has fewer than 2 points' % d)
    timeline = re.search(r'<g id="timeline">(.*?)</g>\s*<g id="residency',
                         dom, re.S) or re.search(r'<g id="timeline">(.*)',
                                                 dom, re.S)
    if not timeline:
        problems.append('no timeline')
    else:
        for cls in ('kernel', 'to_device', 'to_host', 'device_fault'):
            if not re.search(r'<rect class="%s" [^>]*width="[1-9]' % cls,
                             timeline.group(1)):
                problems.append('the timeline has no %s' % cls)
        if 'id="lane-stream-' not in timeline.group(1):
            problems.append('the timeline has no stream lane')
    for cls in ('lat-cpu', 'lat-device'):
        if not re.search(r'<g id="fault-latency">.*<rect class="%s" [^>]*'
                         r'height="[1-9]' % cls, dom, re.S):
            problems.append('the fault latency histogram has no %s bar' % cls)
    if not re.search(r'<g class="residency"', dom):
        problems.append('no residency map')
    for cls in ('res-host', 'res-dev0'):
        if not re.search(r'<rect class="%s"' % cls, dom):
            problems.append('the residency map has no %s cell' % cls)
    return problems


def check_log(log):
    problems = []
    # the page has no script: any console message is a problem (Chromium
    # logs them all as INFO:CONSOLE, whatever their level)
    for line in log.splitlines():
        if re.search(r':CONSOLE[:(]|Uncaught|Failed to load resource|'
                     r'net::ERR_', line):
            problems.append('browser: ' + line.strip())
    return problems


def check_picture(path):
    w, h, rows = png_pixels(path)
    seen = {name: 0 for name in COLOURS}
    inked = 0
    for row in rows:
        for px in row:
            if px != (255, 255, 255):
                inked += 1
            for name, c in COLOURS.items():
                if all(abs(px[i] - c[i]) <= 8 for i in range(3)):
                    seen[name] += 1
    problems = []
    if inked < w * h // 100:
        problems.append('the screenshot is (nearly) blank: %d of %d pixels '
                        'drawn' % (inked, w * h))
    for name, n in seen.items():
        if n < 20:
            problems.append('the screenshot shows no %s (%d pixels)'
                            % (name, n))
    return problems


def check(page):
    chrome = browser()
    if not chrome:
        print('no Chromium (apt-get install chromium, or tools/install-deps)')
        return 77
    url = 'file://' + os.path.abspath(page)
    with tempfile.TemporaryDirectory() as d:
        dom = run_browser(chrome, os.path.join(d, 'p1'),
                          ['--dump-dom', url])
        if dom.returncode != 0:
            print('chromium --dump-dom failed (%d): %s'
                  % (dom.returncode, dom.stderr.strip()[-500:]))
            return 1
        shot = os.path.join(d, 'page.png')
        pic = run_browser(chrome, os.path.join(d, 'p2'),
                          ['--screenshot=' + shot, '--window-size=1000,1600',
                           '--hide-scrollbars', url])
        if pic.returncode != 0 or not os.path.exists(shot):
            print('chromium --screenshot failed (%d): %s'
                  % (pic.returncode, pic.stderr.strip()[-500:]))
            return 1
        problems = (check_dom(dom.stdout) + check_log(dom.stderr) +
                    check_log(pic.stderr) + check_picture(shot))
    for p in problems:
        print(p)
    if not problems:
        print('the page renders: summary, plots and no console error')
    return 1 if problems else 0


def main(argv):
    if len(argv) == 2 and argv[0] == '--generate':
        with tempfile.TemporaryDirectory() as d:
            page = os.path.join(d, 'profile.html')
            rc = subprocess.run([argv[1], '--html', page]).returncode
            if rc != 0:
                print('%s --html failed with status %d' % (argv[1], rc))
                return 1
            return check(page)
    if len(argv) == 1:
        return check(argv[0])
    print(__doc__.strip().split('\n\n')[1])
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
