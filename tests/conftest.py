import pytest

from labkit.data import DataConfig, LabData, load_data


@pytest.fixture(scope="session")
def builtin() -> LabData:
    """The built-in set, loaded once for the whole session (it is only read)."""
    return load_data(DataConfig())
