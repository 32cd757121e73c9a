"""``python -m aegis.bench``."""

from aegis.bench.cli import main

main()
