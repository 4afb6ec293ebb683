"""The web console: server-rendered pages for reviewers, analysts and rules managers (issue 15).

A client of the core, like the HTTP API it is served beside: `vigil serve` mounts it at /console/
(`routes()`), and its pages call the same functions the API routes call (the review system, the
record's timeline and search, the people store), never a second implementation. docs/console.md says
what each page does and how it is secured.
"""

from vigil.console.app import routes
from vigil.console.web import CONSOLE_PATH

__all__ = ["CONSOLE_PATH", "routes"]
