"""Loaded by the Python that runs schemathesis in the gateway's fuzz test (on PYTHONPATH).

CPython before 3.11.8 (and 3.12.0) may raise `SystemError: AST constructor recursion depth
mismatch` from `ast.parse` when it is called deep in the stack (CPython gh-106905), as
Hypothesis does to describe its strategies; the run then ends in an error that is no finding
of the API's. This parses again on a fresh thread, whose stack is shallow, and so gives the
answer the same call gives on a fixed Python.
"""

import ast
import threading

_parse = ast.parse


def _parse_on_a_fresh_stack(*args, **kwargs):
    try:
        return _parse(*args, **kwargs)
    except SystemError as error:
        if "recursion depth mismatch" not in str(error):
            raise
    outcome = {}

    def run():
        try:
            outcome["tree"] = _parse(*args, **kwargs)
        except BaseException as error:  # handed to the caller below
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["tree"]


ast.parse = _parse_on_a_fresh_stack
