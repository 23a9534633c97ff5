"""Every engine_clients error has a LangChain twin that is still the engine_clients class, so code written
against either package catches what the LangChain models raise."""

from __future__ import annotations

import pickle

import langchain_selfhosted.errors as lc
import pytest
from langchain_core.exceptions import ModelConnectionError

import engine_clients.errors as ec


@pytest.mark.parametrize("name", ec.__all__)
def test_each_engine_error_converts_to_a_twin_of_the_same_class(name: str) -> None:
    core = getattr(ec, name)
    twin = getattr(lc, name)
    assert twin is not core and issubclass(twin, core)
    err = core.__new__(core)
    ec.EngineError.__init__(err, "boom", status_code=503, engine="llamacpp")
    converted = lc.to_langchain_error(err)
    assert type(converted) is twin
    assert isinstance(converted, core) and converted.status_code == 503 and str(converted) == str(err)


def test_a_model_still_loading_is_caught_as_either_packages_error() -> None:
    err = ec.ModelLoadingError("Loading model", status_code=503, engine="llamacpp")
    with pytest.raises(ec.ModelLoadingError) as info, lc.translate_errors():
        raise err
    assert isinstance(info.value, ModelConnectionError)
    assert type(pickle.loads(pickle.dumps(info.value))) is lc.ModelLoadingError
