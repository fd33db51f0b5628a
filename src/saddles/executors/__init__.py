"""Where units of work run: in this process, or on the workers of a Ray cluster.

An :class:`~saddles.executors.base.Executor` knows nothing about loss landscapes. It is given
three things: a ``payload`` (in-process data, e.g. a checked landscape problem), a
``setup(payload) -> state`` run once per worker, and a ``work(state, unit) -> result`` run
once per unit; it hands each result back to the caller on the driver as it arrives. The
numerics stay with the caller (:mod:`saddles.landscape.plan` for landscape chunks).

- :mod:`~saddles.executors.base`: the interface, :class:`UnitError`, :func:`make_executor`;
- :mod:`~saddles.executors.registry`: the executors by name; each implementation registers
  itself there, and :func:`make_executor` looks names up there (``base`` never imports them);
- :mod:`~saddles.executors.local`: :class:`LocalExecutor`, today's in-process loop;
- :mod:`~saddles.executors.cluster`: starting a loopback Ray cluster, or joining ``RAY_ADDRESS``;
- :mod:`~saddles.executors.ray_pool`: :class:`RayExecutor`, actors that keep the payload and
  take units one after another, retried elsewhere when a worker dies;
- :mod:`~saddles.executors.units`: :func:`map_units`, whole independent units in input order;
- :mod:`~saddles.executors.threads`: torch's thread count in a worker, set and recorded.

Ray is optional (``pip install 'saddles[ray]'``); nothing here imports it until a
:class:`RayExecutor` is made.
"""

from saddles.executors.base import Executor, Pool, UnitError, make_executor
from saddles.executors.local import LocalExecutor
from saddles.executors.ray_pool import RayExecutor
from saddles.executors.units import map_units

__all__ = [
    "Executor",
    "LocalExecutor",
    "Pool",
    "RayExecutor",
    "UnitError",
    "make_executor",
    "map_units",
]
