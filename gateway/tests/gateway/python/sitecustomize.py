"""Loaded by the Python that runs schemathesis in the gateway's fuzz test (on PYTHONPATH).

In CPython before 3.11.8 (and 3.12.1), `ast.parse` keeps its recursion count in state that
every thread shares (CPython gh-106905): two threads parsing at once corrupt it and one of
them fails with `SystemError: AST constructor recursion depth mismatch`. Schemathesis's
workers are threads, and Hypothesis parses source to describe its strategies, so a run
would end in an error that is no finding of the API's. This makes one thread parse at a
time.
"""

import ast
import threading

_parse = ast.parse
_one_at_a_time = threading.RLock()


def _parse_alone(*args, **kwargs):
    with _one_at_a_time:
        return _parse(*args, **kwargs)


ast.parse = _parse_alone
