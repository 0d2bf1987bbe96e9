"""A sweep worker's long-lived objects, left out of Python's cyclic garbage collection after its first job.

A joblib (loky) worker runs many jobs of a sweep or search. After its first job it holds ~500,000
objects that live as long as the process: TensorFlow's, Keras', MLflow's and matplotlib's modules and
registries. loky runs a full `gc.collect()` after every job that lasted over a second, and each
one walked all of them: ~0.25 s of CPU per job on the machine of README's figures, spent between one
trial and the next (where the next job waited for it). `gc.freeze()` moves the objects alive at
that moment into Python's permanent generation, which collections skip; objects created later, a
trial's own garbage, are still collected as before (a collection then takes ~0.01 s). Frozen
objects are still freed by reference counting: only a reference cycle among them that becomes garbage
later stays, so the freeze comes once, after a collection, when what is left is the libraries' state.
A process that runs a single job (submitit, Slurm) pays that one collection (~0.25 s) and no more.
"""

import functools
import gc


@functools.cache  # once per process: later jobs' objects stay collectable
def freeze_long_lived_objects() -> int:
    """Collects, then freezes what is left; called after a sweep job, which this process may outlive.

    Returns:
        How many objects were frozen.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
