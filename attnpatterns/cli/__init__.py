"""The ``attnpatterns`` command line: thin Typer wrappers over the library.

Each command module resolves its options, calls one library function, saves the result and prints where it
saved it. No tensor maths lives here.
"""
