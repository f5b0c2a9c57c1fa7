"""pytest configuration shared by the unit tests and the notebooks (collected by nbval)."""


def pytest_collectstart(collector):
    """Don't compare stderr in notebooks: it carries progress bars (their rates and times change every run) and
    the kernel's temporary file names; what matters is asserted in cells and compared on stdout."""
    if hasattr(collector, "skip_compare"):
        collector.skip_compare = (*collector.skip_compare, "stderr")
