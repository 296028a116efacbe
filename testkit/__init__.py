"""Generated test documents and the stand-in layout model, shared by tests/ and bench/.

They live outside ``tests`` so that the benchmarks can draw the same documents and build
the same stand-in model without importing the test suite.
"""
