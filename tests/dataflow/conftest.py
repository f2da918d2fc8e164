"""The tiny hand-built graphs of the profiling tests serve the dataflow model too."""

from tests.profiling.conftest import graphs  # noqa: F401  (the fixture, shared)
