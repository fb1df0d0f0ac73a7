"""What the up-front image check (utils.data.check_images) costs: a stat and the first 16 bytes
of every listed image. Writes --files small image files (a JPEG's first bytes and some more)
in folders of 1000 under a temporary folder and times the check on them, projected to
Clothing1M's 1M images:
  warm                the files just written, in the page cache
  data pages dropped  their data pages dropped from the cache (posix_fadvise DONTNEED, per
                      file); the inode and folder caches stay warm, and the disk below may
                      have its own cache: this is not a cold disk
  storage wait        warm, with every stat made to wait --wait_ms first (a sleep, as a disk
                      or network file system makes it wait): how the check's threads, which
                      it starts when its first 1024 files are slow, overlap such waits
Each with the check as it runs (threads only when the files are slow) and forced into one
thread or into its thread pool.

    python results/input_check/measure.py > results/input_check/output.txt
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
import utils.data as data  # noqa: E402 (after the path line)


def write_files(folder, count):
    paths = []
    for i in range(count):
        sub = os.path.join(folder, '%03d' % (i // 1000))
        if i % 1000 == 0:
            os.makedirs(sub)
        path = os.path.join(sub, '%06d.jpg' % i)
        with open(path, 'wb') as f:
            f.write(b'\xff\xd8\xff\xe0' + os.urandom(200))
        paths.append(path)
    return paths


def drop_data_pages(paths):
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def timed_check(paths, mode):
    """Seconds check_images takes; mode 'as it runs', '1 thread' or 'threads'."""
    data.WAITING_FILE_SECONDS = {'as it runs': 100e-6, '1 thread': 1e9, 'threads': 0}[mode]
    start = time.perf_counter()
    data.check_images(paths, 'images', 'none', distinct=True)
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--files', type=int, default=100_000)
    p.add_argument('--wait_ms', type=float, default=0.5)
    p.add_argument('--dir', default=None, help='where to write them (default: the temp folder)')
    args = p.parse_args()
    folder = tempfile.mkdtemp(prefix='input_check_', dir=args.dir)
    stat = os.stat
    try:
        start = time.perf_counter()
        paths = write_files(folder, args.files)
        print('%d files of 204 bytes written in %.1f s; %d CPUs usable; %d threads'
              % (len(paths), time.perf_counter() - start, data.usable_cpus(), data.CHECK_THREADS))
        timed_check(paths, '1 thread')  # warms what writing did not
        for cache in ('warm', 'data pages dropped', 'storage wait'):
            count = len(paths) if cache != 'storage wait' else min(len(paths), 20_000)
            for mode in ('as it runs', '1 thread', 'threads'):
                if cache == 'data pages dropped':
                    drop_data_pages(paths)
                if cache == 'storage wait':
                    os.stat = lambda *a, **k: (time.sleep(args.wait_ms / 1e3), stat(*a, **k))[1]
                try:
                    seconds = timed_check(paths[:count], mode)
                finally:
                    os.stat = stat
                print('%-18s %-11s %7d files %6.2f s = %6.1f us per file -> %6.1f s per million'
                      % (cache, mode, count, seconds, 1e6 * seconds / count,
                         1e6 * seconds / count))
    finally:
        shutil.rmtree(folder)


if __name__ == '__main__':
    main()
