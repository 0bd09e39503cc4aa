"""No import goes up a layer: the layer table of src/fpqvar/README.md, checked against every module's imports."""

import ast
import pathlib
import re

import pytest

PACKAGE = "fpqvar"


def read_layers(readme: pathlib.Path) -> dict[str, int]:
    """unit -> layer, from the ```text block of the README's Architecture section."""
    section = readme.read_text().split("## Architecture", 1)[1]
    block = re.search(r"```text\n(.*?)```", section, re.S).group(1)
    layers = {}
    for line in block.splitlines()[1:]:  # the first line is the header
        number, *units = line.split()
        for unit in units:
            assert unit not in layers, f"{unit} is placed twice in the layer table"
            layers[unit] = int(number)
    return layers


def unit_of(module: tuple[str, ...]) -> str:
    """The unit (top-level package or module of fpqvar) of a module path below fpqvar; () is fpqvar itself."""
    return module[0] if module else "__init__"


def imported_units(path: pathlib.Path, root: pathlib.Path) -> list[tuple[int, str]]:
    """(line, unit) of every fpqvar import in the file at ``path``, at any depth (functions included)."""
    package = path.relative_to(root).parts[:-1]  # the file's package below fpqvar (a package's own, for __init__)
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == PACKAGE:
                    found.append((node.lineno, unit_of(tuple(parts[1:]))))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = (*base, *(node.module.split(".") if node.module else ()))
            elif node.module and node.module.split(".")[0] == PACKAGE:
                target = tuple(node.module.split(".")[1:])
            else:
                continue
            if target:
                found.append((node.lineno, unit_of(target)))
            else:  # `from . import x` at the package root: x is a unit, or an attribute of fpqvar/__init__
                for alias in node.names:
                    is_unit = (root / f"{alias.name}.py").exists() or (root / alias.name).is_dir()
                    found.append((node.lineno, alias.name if is_unit else "__init__"))
    return found


def upward_imports(root: pathlib.Path, layers: dict[str, int]) -> list[str]:
    """Every import that goes up a layer, and every unit the table does not place, as readable lines."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        source_unit = unit_of(path.relative_to(root).with_suffix("").parts)
        if source_unit not in layers:
            problems.append(f"{path.relative_to(root)}: unit {source_unit!r} has no layer in the table")
            continue
        for line, unit in imported_units(path, root):
            if unit not in layers:
                problems.append(f"{path.relative_to(root)}:{line} imports {unit!r}, which has no layer in the table")
            elif layers[unit] > layers[source_unit]:
                problems.append(
                    f"{path.relative_to(root)}:{line}: {source_unit} (layer {layers[source_unit]}) imports "
                    f"{unit} (layer {layers[unit]}), a layer above it"
                )
    return problems


@pytest.fixture(scope="module")
def source_root(repo_root):
    return repo_root / "src" / PACKAGE


def test_no_import_goes_up_a_layer(source_root):
    layers = read_layers(source_root / "README.md")
    assert upward_imports(source_root, layers) == []


def test_the_table_places_only_units_that_exist(source_root):
    layers = read_layers(source_root / "README.md")
    units = {p.stem if p.is_file() else p.name for p in source_root.iterdir()
             if (p.suffix == ".py") or (p.is_dir() and (p / "__init__.py").exists())}
    assert set(layers) == units


def test_an_upward_import_is_caught_even_inside_a_function(tmp_path):
    root = tmp_path / PACKAGE
    (root / "formats").mkdir(parents=True)
    (root / "model").mkdir()
    (root / "__init__.py").write_text("")
    (root / "formats" / "__init__.py").write_text("from .grid import x\n")
    (root / "formats" / "grid.py").write_text("def f():\n    from ..model.var import VAR\n    import fpqvar.model\n")
    (root / "model" / "__init__.py").write_text("from ..formats import x\nfrom fpqvar import formats\n")
    problems = upward_imports(root, {"__init__": 0, "formats": 1, "model": 3})
    assert len(problems) == 2 and all("formats (layer 1) imports model (layer 3)" in p for p in problems)
    assert "grid.py:2" in problems[0] and "grid.py:3" in problems[1]
