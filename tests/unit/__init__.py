"""Table-driven unit tests of the pure modules: no web app, and a database only where a function reads one."""
