"""``images/build.py`` decides what to build from content, and builds the way it promises.

No image is built here (the real-node e2e suite runs real builds): these tests check
the pure part, which is where the promises live. A key changes with every input
that changes an image and with nothing else; the plan rebuilds exactly the stale
images; the CA bundle reaches a build step only as a read-only mount; build steps
use the host's network, so the builder adds no bridge or NAT rules to the machine.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("images_build", REPO / "images" / "build.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


build = _load()
PATTERNS = build.read_ignore_patterns((REPO / "images" / "context.ignore").read_text())


def test_copy_sources_reads_context_paths_but_not_other_stages() -> None:
    dockerfile = (
        "FROM base AS build\n"
        "COPY pyproject.toml README.md ./\n"
        "COPY --chown=1:1 operator ./operator\n"
        'COPY ["suggestion/", "./suggestion"]\n'
        "COPY --from=build /opt/x /opt/x\n"
        "ADD examples \\\n  /app/examples\n"
    )
    assert build.copy_sources(dockerfile) == [
        "pyproject.toml",
        "README.md",
        "operator",
        "suggestion",
        "examples",
    ]


@pytest.mark.parametrize("dockerfile", sorted((REPO / "images").glob("*/Dockerfile")))
def test_every_dockerfile_copies_only_existing_paths(dockerfile: Path) -> None:
    sources = build.copy_sources(dockerfile.read_text())
    assert sources, "each image installs kubesweep from the build context"
    assert all((REPO / s).exists() for s in sources), sources


def test_ignored_files_never_enter_the_context() -> None:
    for path in (
        "operator/kubesweep/__pycache__/x.cpython-311.pyc",
        "operator/kubesweep.egg-info/PKG-INFO",
        ".venv/bin/python",
    ):
        assert build.ignored(path, PATTERNS), path
    assert not build.ignored("operator/kubesweep/collector/__init__.py", PATTERNS)


def _key(files: list[tuple[str, bytes]], dockerfile: bytes = b"FROM x", base: str = "b1") -> str:
    return str(build.image_key(dockerfile, files, {"PYTHON_IMAGE": base}))


def test_key_follows_content_not_order_or_time() -> None:
    files = [("a.py", b"1"), ("b.py", b"2")]
    assert _key(files) == _key(list(reversed(files)))
    assert _key(files) != _key([("a.py", b"1"), ("b.py", b"3")])
    assert _key(files) != _key([("a.py", b"1"), ("c.py", b"2")]), "a renamed file"
    assert _key(files) != _key(files, dockerfile=b"FROM y")
    assert _key(files) != _key(files, base="b2"), "a new base image"


def test_context_files_of_a_real_image_are_stable(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text("x = 1\n")
    (tmp_path / "pkg" / "__pycache__").mkdir()
    (tmp_path / "pkg" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "README.md").write_text("r\n")
    assert build.context_files(tmp_path, ["README.md", "pkg"], PATTERNS) == [
        "README.md",
        "pkg/m.py",
    ]


def _record(name: str, key: str, tag: str = "dev") -> object:
    return build.Record(
        name=name,
        key=key,
        reference=build.image_reference(name, tag),
        archive=f"/c/{name}.oci.tar",
        archive_bytes=1,
        image_bytes=1,
        build_seconds=1.0,
        built_at="2026-01-01T00:00:00Z",
    )


def test_plan_rebuilds_exactly_the_stale_images() -> None:
    keys = {"collector": "k1", "operator": "k2", "suggestion": "k3", "trainer-sklearn": "k4"}
    records = {
        "collector": _record("collector", "k1"),  # up to date
        "operator": _record("operator", "old"),  # inputs changed
        "suggestion": _record("suggestion", "k3"),  # archive deleted
        "trainer-sklearn": None,  # never built
    }
    present = {"collector", "operator", "trainer-sklearn"}
    steps = {s.name: s.build for s in build.plan(keys, records, present, "dev")}
    assert steps == {
        "collector": False,
        "operator": True,
        "suggestion": True,
        "trainer-sklearn": True,
    }
    assert all(s.build for s in build.plan(keys, records, present, "dev", force=True))
    assert all(s.build for s in build.plan(keys, records, present, "v2")), "another tag"


def test_default_selection_leaves_out_the_optional_images() -> None:
    available = ["collector", "operator", "suggestion", "trainer-sklearn", "trainer-torch"]
    assert "trainer-torch" not in build.select_images(available, [])
    assert build.select_images(available, ["trainer-torch"]) == ["trainer-torch"]
    with pytest.raises(SystemExit, match="no such image: nope"):
        build.select_images(available, ["nope"])


def test_build_command_mounts_the_ca_read_only_and_uses_the_host_network() -> None:
    argv = build.bud_argv(
        "buildah",
        Path("/cache"),
        "operator",
        "localhost/kubesweep/operator:dev",
        build_args={"PYTHON_IMAGE": "localhost/kubesweep/base:abc"},
        ca_bundle="/etc/ssl/certs/ca-certificates.crt",
    )
    joined = " ".join(argv)
    assert "--volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro" in (
        joined
    )
    assert "--network host" in joined
    assert "--pull=never" in argv
    assert "--build-arg PYTHON_IMAGE=localhost/kubesweep/base:abc" in joined
    assert "-f images/operator/Dockerfile" in joined
    assert "--root /cache/storage" in joined, "the builder's store lives in the cache"
    assert argv[-1] == "."


def test_push_targets_the_registry_under_the_project_namespace() -> None:
    ref = build.image_reference("collector", "1.2.3", "registry.example:5000/team/")
    assert ref == "registry.example:5000/team/kubesweep/collector:1.2.3"
    assert build.push_argv(Path("/c/collector.oci.tar"), ref) == [
        "skopeo",
        "copy",
        "oci-archive:/c/collector.oci.tar",
        "docker://registry.example:5000/team/kubesweep/collector:1.2.3",
    ]


def test_base_key_is_the_recipe() -> None:
    assert build.base_key() == build.base_key()
    assert build.base_key(packages=[*build.BASE_PACKAGES, "curl"]) != build.base_key()
    assert build.base_reference(build.base_key()).startswith("localhost/kubesweep/base:")


def test_prune_removes_the_untagged_images_of_the_cache_storage_only() -> None:
    assert build.prune_argv("buildah", Path("/c")) == [
        "buildah",
        "--root",
        "/c/storage",
        "--runroot",
        "/c/run",
        "rmi",
        "--prune",
    ]
    assert build.prune_argv("podman", Path("/c"))[-3:] == ["image", "prune", "--force"]
