"""Parse a Python source file into its AST, for the checks that read the project's own code
(the firmware's import rule, the import graph, the benchmark's module order).

The collector is paused while the parser builds the tree: on CPython 3.11 a finalizer that runs
in the middle (an asyncio future logging its unretrieved error, whose traceback formatting
parses source again) breaks the parser's recursion bookkeeping and `ast.parse` raises
`SystemError: AST constructor recursion depth mismatch` on perfectly good source (CPython
gh-106905, fixed in later releases)."""

import ast
import gc


def parse_file(path):
    with open(path, encoding="utf-8") as f:
        source = f.read()
    return parse_source(source, path)


def parse_source(source, filename="<unknown>"):
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(source, filename)
    finally:
        if was_enabled:
            gc.enable()
