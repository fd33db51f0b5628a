"""The names the library accepts for its string options, in a module that imports no torch.

Each tuple is the one definition of its names; the modules that use them import them from here
(and re-export them: ``saddles.directions.NORMS`` is ``saddles.names.NORMS``). They live apart
from those modules, which import torch, so that the command line can offer them as choices
without importing torch (``saddles topology`` never does).
"""

from saddles.executors import registry as _executor_registry
from saddles.sampling import METHODS as _SCATTERED_METHODS

#: Loss criteria on ``(inputs, targets)`` batches, and next-token cross-entropy on token
#: batches, ``causal_lm`` (:func:`saddles.io.data.make_loss`).
CRITERIA = ("cross_entropy", "mse", "causal_lm")

#: Direction normalizations and Gram-Schmidt variants (:mod:`saddles.directions`).
NORMS = ("filter", "layer", "model", "none")
ORTHOGONALIZE = ("none", "orthogonal", "orthonormal")

#: Which extreme eigenvalues (:func:`saddles.hessian.top_eigen`), trace estimators
#: (:func:`saddles.hessian.trace`) and Hessian-vector product backends
#: (:class:`saddles.hessian.HessianOperator`).
WHICH = ("LA", "SA", "LM")

#: Which Hessian eigenvectors span a "hessian" plane (``hessian_which`` of
#: :class:`saddles.runs.config.AnalysisConfig`): ``"top"``, the largest eigenvalues (Lanczos
#: ``"LA"``; the paper's plane); ``"top_bottom"``, the largest and the most negative (``"SA"``),
#: half each (the top ones first, ``ceil(n/2)`` of them), the plane that cuts a saddle.
HESSIAN_PLANES = ("top", "top_bottom")

#: An analysis's ``span`` may be this word instead of a number or a list: a geometric sweep
#: from where the landscape is flat within its noise to where the loss has risen well above its
#: centre value (:func:`saddles.landscape.scales.auto_spans`).
SPAN_AUTO = "auto"
TRACE_METHODS = ("hutch++", "hutchinson", "exact")
HVP_METHODS = ("auto", "reverse", "forward", "fastest")

#: Evaluation precisions of the pipeline (:class:`saddles.runs.config.AnalysisConfig`).
FLOAT_DTYPES = ("float32", "float64")

#: Direction policies over a training run (:mod:`saddles.runs.series`).
POLICIES = ("fixed", "hessian", "pca")
#: The language-model study's policy by default (:mod:`saddles.experiments.lm.experiment`):
#: the Hessian's directions, whose top/bottom plane cuts the saddles random planes miss.
LM_POLICY = "hessian"
#: Training runs per size in the language-model study by default: two give its numbers
#: intervals over training runs (a training run is one sample too, like a random plane).
LM_TRAIN_SEEDS = 2

#: Datasets of the ResNet experiment (:mod:`saddles.experiments.resnet`).
DATASETS = ("cifar10", "digits")

#: Landscape engines (:mod:`saddles.landscape.plan`, :mod:`saddles.landscape.engines`).
ENGINES = ("auto", "sequential", "batched")

#: Where units of work run: the built-in executors of :mod:`saddles.executors.registry` (a
#: standard-library module, so reading its names imports neither torch nor Ray).
EXECUTORS = tuple(_executor_registry.BUILTIN)

#: Mixed-precision forwards under ``torch.autocast`` (:func:`saddles.landscape.evaluate`).
AUTOCAST = ("bf16", "fp16")

#: ``eval_tokens`` may be this word instead of a token count (:mod:`saddles.landscape.tokens`),
#: with its default target standard error, a fraction of the value range: half of an
#: analysis's default simplification threshold (1% of the range).
EVAL_TOKENS_AUTO = "auto"
STDERR_TARGET = 0.005

#: How a grid is sampled: every point, or adaptively refined from a coarse sub-grid
#: (:func:`saddles.sampling.adaptive_grid`, :mod:`saddles.landscape.adaptive`).
GRID_SAMPLINGS = ("grid", "adaptive")

#: An analysis's sampling (:class:`saddles.runs.config.AnalysisConfig`): a grid kind, or
#: scattered points by one of :data:`saddles.sampling.METHODS`.
SAMPLINGS = GRID_SAMPLINGS + _SCATTERED_METHODS
