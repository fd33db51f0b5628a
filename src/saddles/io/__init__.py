"""What comes in: data files and batches, models, checkpoints and parameter selections.

- :mod:`~saddles.io.data`: batches as stored (tensors, tuples, dicts), losses over them;
- :mod:`~saddles.io.models`: ``module:function`` factories and local Hugging Face folders;
- :mod:`~saddles.io.checkpoints`: the one safe loader and saver of state dicts;
- :mod:`~saddles.io.params`: which parameters directions and Hessians act on;
- :mod:`~saddles.io.problem`: :func:`load_problem`, a model, its loss and its data loaded and
  checked together (what every command that analyses a model does first).

Each module imports torch; this package's ``__init__`` does not (``load_problem`` is imported
on first use).
"""

__all__ = ["load_problem"]


def __getattr__(name: str):
    if name in ("load_problem", "Problem", "InputError"):
        from saddles.io import problem

        return getattr(problem, name)
    raise AttributeError(f"module 'saddles.io' has no attribute {name!r}")
