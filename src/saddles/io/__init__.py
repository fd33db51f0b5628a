"""What comes in: data files and batches, models, checkpoints and parameter selections.

- :mod:`~saddles.io.data`: batches as stored (tensors, tuples, dicts), losses over them;
- :mod:`~saddles.io.models`: ``module:function`` factories and local Hugging Face folders;
- :mod:`~saddles.io.checkpoints`: the one safe loader and saver of state dicts;
- :mod:`~saddles.io.params`: which parameters directions and Hessians act on.

Each module imports torch; this package's ``__init__`` does not.
"""
