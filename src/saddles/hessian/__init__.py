"""Curvature of the loss: the Hessian as an operator, its extreme eigenpairs, trace and density.

One module per idea; this package re-exports their public names:

- :mod:`~saddles.hessian.operator`: :class:`SymmetricOperator`, the interface every algorithm is
  written against, and :class:`DenseOperator`, an explicit matrix, the algorithms' exact oracle.
- :mod:`~saddles.hessian.hvp`: :class:`HessianOperator` turns ``(model, loss, data)`` into a
  symmetric operator over a chosen subset of the parameters (:func:`select_parameters`) whose
  products are Hessian-vector products (HVPs, Pearlmutter 1994).
- :mod:`~saddles.hessian.krylov`: :func:`lanczos` with full reorthogonalization and
  :func:`top_eigen`, extreme eigenpairs (Golub & Van Loan, *Matrix Computations*, sec. 10.1-10.3).
- :mod:`~saddles.hessian.hutchpp`: :func:`trace`, by Hutchinson's estimator (1989), Hutch++
  (Meyer, Musco, Musco & Woodruff, SOSA 2021) or exactly.
- :mod:`~saddles.hessian.slq`: :func:`spectral_density`, stochastic Lanczos quadrature (Ubaru, Chen
  & Saad, SIMAX 2017; Ghorbani, Krishnan & Xiao, ICML 2019), as in PyHessian's figure.
- :mod:`~saddles.hessian.power`: :func:`power_iteration`, PyHessian's eigenvalue routine (Yao et
  al. 2020), reproduced as a baseline for the benchmark.
- :mod:`~saddles.hessian.random_vectors`: the seeded start vectors and probes they share.

Results cross the package boundary as numpy arrays in small dataclasses; eigenvectors are also
given as lists of parameter-shaped tensors (zeros outside the parameter filter), ready to be used
as landscape directions. This package imports torch; the topology package must not import it.
Figures of a density live in :mod:`saddles.report.hessian_plots`.
"""

from __future__ import annotations

from saddles.hessian.hutchpp import TraceEstimate, trace
from saddles.hessian.hvp import HessianOperator, NondeterministicHessianError, select_parameters
from saddles.hessian.krylov import Eigenpairs, LanczosDecomposition, lanczos, top_eigen
from saddles.hessian.operator import DenseOperator, SymmetricOperator
from saddles.hessian.power import PowerIteration, power_iteration
from saddles.hessian.slq import SpectralDensity, spectral_density

__all__ = [
    "DenseOperator",
    "Eigenpairs",
    "HessianOperator",
    "LanczosDecomposition",
    "NondeterministicHessianError",
    "PowerIteration",
    "SpectralDensity",
    "SymmetricOperator",
    "TraceEstimate",
    "lanczos",
    "power_iteration",
    "select_parameters",
    "spectral_density",
    "top_eigen",
    "trace",
]
