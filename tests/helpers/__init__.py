"""The tests' helpers: support (what the test files share), and the scripts pages.py,
font_letters.py and benchmark.py, which the tests import and people run."""
