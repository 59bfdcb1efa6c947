"""aiedit for Krita: send the selection, its mask and a prompt to an aiedit server and get the
results back as new layers. A docker for artists, ``aiedit.run`` for scripts.

    import aiedit
    nodes = aiedit.run(Krita.instance().activeDocument(), "inpaint", model="classic-telea")
"""

from .scripting import run

__all__ = ["run"]


def _register_with_krita() -> None:
    """Add the docker and the actions when Krita loads the plugin (not under plain Python)."""
    try:
        from krita import DockWidgetFactory, DockWidgetFactoryBase, Krita
    except ImportError:
        return
    from .docker import DOCKER_ID, AieditDocker
    from .extension import AieditExtension

    app = Krita.instance()
    app.addDockWidgetFactory(
        DockWidgetFactory(DOCKER_ID, DockWidgetFactoryBase.DockRight, AieditDocker))
    app.addExtension(AieditExtension(app))


_register_with_krita()
