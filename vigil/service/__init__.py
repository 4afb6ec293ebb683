"""`vigil serve`: the HTTP front door. Thin routes over one Engine; see app.create_app."""

from vigil.service.app import ServiceSettings, create_app

__all__ = ["ServiceSettings", "create_app"]
