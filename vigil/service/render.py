"""JSON out that cannot fail: vigil.jsonout, which the core (the record's writer) uses too; the service's
modules import it from here by their older name."""

from vigil.jsonout import MAX_RENDER_DEPTH, TOO_DEEP, dumps, plain

__all__ = ["MAX_RENDER_DEPTH", "TOO_DEEP", "dumps", "plain"]
