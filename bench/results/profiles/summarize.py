#!/usr/bin/env python3
"""Summarise a py-spy raw (collapsed) profile: own and inclusive share of sampled frames.

    python summarize.py profile.txt [top_own] [top_inclusive]
"""
import sys
from collections import Counter
own=Counter(); incl=Counter(); total=0
for line in open(sys.argv[1]):
    stack, n = line.rsplit(' ',1); n=int(n)
    frames=stack.split(';')
    if any(k in frames[-1] for k in ("select (selectors", "_worker (concurrent/futures/thread.py:81)", "wait (threading")): continue
    total+=n
    own[frames[-1]]+=n
    for f in set(frames): incl[f]+=n
print("active total", total)
for f,n in own.most_common(int(sys.argv[2]) if len(sys.argv)>2 else 30): print("%5.1f%% own %s"%(100*n/total,f[:140]))
print()
for f,n in incl.most_common(int(sys.argv[3]) if len(sys.argv)>3 else 70): print("%5.1f%% incl %s"%(100*n/total,f[:140]))
