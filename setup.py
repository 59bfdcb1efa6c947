"""Everything else is in pyproject.toml. This file only packs the editor plug-ins into the
wheel (as package data under `aiedit/_plugins`), so `aiedit plugins install|zip` work for
people who installed aiedit from a wheel and never cloned the repository."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
PLUGINS = ("client", "gimp", "krita", "photoshop-uxp-bridge")
SKIP = shutil.ignore_patterns("node_modules", "__pycache__", "*.pyc", "dist", "*.ccx")


class BuildPyWithPlugins(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # a development install reads plugins/ from the source tree
        target = Path(self.build_lib) / "aiedit" / "_plugins"
        shutil.rmtree(target, ignore_errors=True)
        for name in PLUGINS:
            shutil.copytree(ROOT / "plugins" / name, target / name, ignore=SKIP)


setup(cmdclass={"build_py": BuildPyWithPlugins})
