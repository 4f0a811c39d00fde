#!/usr/bin/env python3
"""The member's side of a race: swap two paths atomically, in a loop, until a file appears.

    race_exchange.py PATH_A PATH_B STOP_FILE

Uses renameat2(RENAME_EXCHANGE), so at every instant one of the two names is a directory (or
file) and the other a symlink, as an attacker racing a root process would arrange. Prints the
number of swaps when it stops.
"""
import ctypes
import os
import sys

libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
RENAME_EXCHANGE = 2
a, b, stop = (os.fsencode(x) for x in sys.argv[1:4])
n = 0
while True:
    for _ in range(200):
        if libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) == 0:
            n += 1
    if os.path.exists(stop):
        break
print(n, flush=True)
