"""A sweep worker freezes its long-lived objects once (`jobs/worker_memory.py`), and its later jobs'
garbage is still collected."""

import subprocess
import sys

CHECK = """
import gc, weakref
from lstm_exp.jobs.worker_memory import freeze_long_lived_objects

class Node:
    pass

kept = Node(); kept.self = kept          # alive when the worker freezes: left to the process
frozen = freeze_long_lived_objects()
assert frozen > 0 and gc.get_freeze_count() == frozen, frozen
assert freeze_long_lived_objects() == frozen and gc.get_freeze_count() == frozen  # once per process

later = Node(); later.self = later       # a later job's reference cycle, garbage once dropped
gone = weakref.ref(later)
del later
gc.collect()
assert gone() is None, "a cycle made after the freeze was not collected"
assert gc.get_freeze_count() == frozen
print("ok", frozen)
"""


def test_freeze_once_and_later_cycles_still_collected():
    # A fresh interpreter: the freeze is per process and must not reach pytest's own.
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok ")
