"""The fixture of the Hessian tests: each small model with its exact Hessian, once per module."""

from __future__ import annotations

import pytest
from hessian_cases import MODELS


@pytest.fixture(scope="module", params=sorted(MODELS))
def case(request):
    model, loss, data, exact = MODELS[request.param]()
    H = exact().numpy()
    return request.param, model, loss, data, H
