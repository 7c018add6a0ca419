"""Packaging beyond pyproject.toml: the top-level migrations/ directory ships inside the wheel as
`resonanz.migrations`, where `resonanz db upgrade` finds it when installed (resonanz/store/migrate.py)."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["resonanz*", "bot*", "connectors*", "handover*"]),
              "resonanz.migrations", "resonanz.migrations.versions"],
    package_dir={"resonanz.migrations": "migrations"},
)
