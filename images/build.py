"""Build the images of ``images/*/Dockerfile`` as OCI archives, rebuilding only what changed.

Why a script and not a Makefile rule per image: whether an image is stale depends on
the *content* of its inputs (the Dockerfile, the files its ``COPY`` lines take from
the build context, the base image and the build arguments), not on timestamps, which
a fresh clone or a ``git checkout`` resets. Each image gets a key, the hash of those
inputs; an archive whose recorded key matches is reused as it is.

Where no registry is reachable the Dockerfiles' base (``ARG PYTHON_IMAGE``) is
replaced by an image made here from Debian packages (``mmdebstrap``), so nothing is
pulled. pip inside a build trusts what this machine trusts: the host's CA bundle is
mounted read-only into each build step and never becomes part of an image.

Output, outside the repository: ``$KUBESWEEP_CACHE/images`` (default
``~/.cache/kubesweep/images``) holds ``<name>.oci.tar`` (an OCI archive whose image is
named ``localhost/kubesweep/<name>:<tag>``), ``<name>.json`` (key, reference, sizes,
build seconds) and the builder's own storage (``storage/``), which also caches layers;
the untagged images earlier builds left there are pruned after each build.

    python images/build.py build [NAME...]          # default: every image but the optional ones
    python images/build.py push --registry REG      # to REG/kubesweep/<name>:<tag>
    python images/build.py list                     # what is built, with sizes

The pure part (keys, the build plan, command lines) is what ``tests/images`` checks;
``main`` and the ``run_*`` functions are the thin edge that calls mmdebstrap, buildah
and skopeo.
"""

from __future__ import annotations

import argparse
import fcntl
import fnmatch
import gzip
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parent.parent
IMAGES_DIR = REPO / "images"
IGNORE_FILE = IMAGES_DIR / "context.ignore"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
NAMESPACE = "kubesweep"
LOCAL_REGISTRY = "localhost"
# Built only when named: the CUDA wheels make trainer-torch several GiB. The dashboard is
# built by default although the chart runs it only with dashboard.enabled: the real
# node's e2e suite runs it as the chart does.
OPTIONAL_IMAGES = frozenset({"trainer-torch"})
# The Dockerfiles' base image argument and the Debian recipe that replaces it.
BASE_ARG = "PYTHON_IMAGE"
BASE_SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
# Bump when the way the base is assembled changes, so cached bases are rebuilt.
BASE_RECIPE_REV = "2"
# Documentation, manual pages and translations are no use in an image.
BASE_PATH_EXCLUDES = (
    "/usr/share/doc/*",
    "/usr/share/man/*",
    "/usr/share/info/*",
    "/usr/share/locale/*",
)


def default_cache() -> Path:
    return Path(os.environ.get("KUBESWEEP_CACHE", Path.home() / ".cache" / "kubesweep")) / "images"


# ---- pure: what goes into a key ----


def _sha256(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def base_key(suite: str = BASE_SUITE, packages: Sequence[str] = BASE_PACKAGES) -> str:
    """The base image's key: its recipe (suite and package list), not the mirror's state."""
    recipe = json.dumps([BASE_RECIPE_REV, suite, sorted(packages), BASE_PATH_EXCLUDES])
    return _sha256(recipe.encode())[:16]


def base_reference(key: str) -> str:
    return f"{LOCAL_REGISTRY}/{NAMESPACE}/base:{key}"


def image_reference(name: str, tag: str, registry: str = LOCAL_REGISTRY) -> str:
    return f"{registry.rstrip('/')}/{NAMESPACE}/{name}:{tag}"


def copy_sources(dockerfile: str) -> list[str]:
    """The build-context paths a Dockerfile's ``COPY``/``ADD`` lines read (not ``--from``)."""
    text = dockerfile.replace("\\\n", " ")
    sources: list[str] = []
    for raw in text.splitlines():
        words = raw.split()
        if not words or words[0].upper() not in ("COPY", "ADD"):
            continue
        args = words[1:]
        if any(a.startswith("--from") for a in args):
            continue
        paths = [a for a in args if not a.startswith("--")]
        if paths and paths[0].startswith("["):  # JSON form: ["src", ..., "dst"]
            paths = json.loads(" ".join(paths))
        sources.extend(p.rstrip("/") or "." for p in paths[:-1])
    return sources


def ignored(relpath: str, patterns: Iterable[str]) -> bool:
    """Whether ``relpath`` (or a folder above it) matches one of the ignore patterns."""
    parts = relpath.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatch(c, p) or fnmatch.fnmatch(parts[i], p)
        for p in patterns
        for i, c in enumerate(candidates)
    )


def read_ignore_patterns(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def context_files(repo: Path, sources: Sequence[str], patterns: Sequence[str]) -> list[str]:
    """Every file under ``sources`` that the build context sends, as sorted relative paths."""
    found: set[str] = set()
    for source in sources:
        top = repo / source
        walk = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for path in walk:
            rel = path.relative_to(repo).as_posix()
            if not ignored(rel, patterns):
                found.add(rel)
    return sorted(found)


def image_key(
    dockerfile: bytes,
    files: Sequence[tuple[str, bytes]],
    build_args: dict[str, str],
) -> str:
    """The key of one image: Dockerfile, each context file (path and bytes), build args."""
    parts = [dockerfile, json.dumps(sorted(build_args.items())).encode()]
    for rel, content in sorted(files):
        parts += [rel.encode(), hashlib.sha256(content).digest()]
    return _sha256(*parts)[:16]


@dataclass(frozen=True)
class Record:
    """What ``<name>.json`` says about a built archive."""

    name: str
    key: str
    reference: str
    archive: str
    archive_bytes: int
    image_bytes: int
    build_seconds: float
    built_at: str


@dataclass(frozen=True)
class Step:
    """One image of a plan: build it, or reuse the archive whose key matches."""

    name: str
    key: str
    reference: str
    build: bool


def plan(
    keys: dict[str, str],
    records: dict[str, Record | None],
    archives_present: set[str],
    tag: str,
    force: bool = False,
) -> list[Step]:
    """Which images to build: those without a record, with another key, or no archive."""
    steps = []
    for name in sorted(keys):
        record = records.get(name)
        fresh = (
            record is not None
            and record.key == keys[name]
            and record.reference == image_reference(name, tag)
            and name in archives_present
        )
        steps.append(Step(name, keys[name], image_reference(name, tag), force or not fresh))
    return steps


def select_images(available: Sequence[str], wanted: Sequence[str]) -> list[str]:
    """Named images, or by default every image except the optional ones."""
    if not wanted:
        return sorted(n for n in available if n not in OPTIONAL_IMAGES)
    unknown = sorted(set(wanted) - set(available))
    if unknown:
        raise SystemExit(f"no such image: {', '.join(unknown)} (have: {', '.join(available)})")
    return sorted(set(wanted))


# ---- pure: command lines ----


def storage_flags(builder: str, cache: Path) -> list[str]:
    """Keep the builder's images and layers in the cache, not in the machine's store."""
    return [builder, "--root", str(cache / "storage"), "--runroot", str(cache / "run")]


def bud_argv(
    builder: str,
    cache: Path,
    name: str,
    reference: str,
    *,
    build_args: dict[str, str],
    ca_bundle: str | None,
) -> list[str]:
    """``buildah bud`` (podman's ``build`` takes the same flags) for one Dockerfile.

    ``--network host``: build steps need no network of their own, and a private one
    would make the builder add a bridge and NAT rules to this machine.
    ``--pull never``: the base is local. ``--layers``: unchanged steps are reused.
    """
    argv = [*storage_flags(builder, cache), "bud", "--layers", "--pull=never"]
    argv += ["--network", "host", "--format", "oci", "--ignorefile", str(IGNORE_FILE)]
    argv += ["-f", f"images/{name}/Dockerfile", "-t", reference]
    if ca_bundle:
        argv += ["--volume", f"{ca_bundle}:{ca_bundle}:ro"]
    for k, v in sorted(build_args.items()):
        argv += ["--build-arg", f"{k}={v}"]
    return [*argv, "."]


def prune_argv(builder: str, cache: Path) -> list[str]:
    """Remove the untagged images earlier builds left in the cache's storage.

    Each build tags its new image and leaves the one it replaces, and that one's
    intermediate steps, untagged: a day of builds grew the storage to 12 GB, 1.6 GB
    once pruned. The steps of the tagged images stay (an image whose child is kept is
    kept); those of a multi-stage build's first stage go too, which costs the next
    build of that stage the steps before its first changed ``COPY``. podman says it
    ``image prune``.
    """
    verb = ["image", "prune", "--force"] if Path(builder).name == "podman" else ["rmi", "--prune"]
    return [*storage_flags(builder, cache), *verb]


def push_argv(archive: Path, destination: str) -> list[str]:
    return ["skopeo", "copy", f"oci-archive:{archive}", f"docker://{destination}"]


# ---- edges ----


def _run(argv: Sequence[str], **kw: object) -> subprocess.CompletedProcess[str]:
    print("+", shlex.join(argv), file=sys.stderr, flush=True)
    return subprocess.run(argv, check=True, text=True, **kw)  # type: ignore[call-overload, no-any-return]


def _exists(builder: str, cache: Path, reference: str) -> bool:
    argv = [*storage_flags(builder, cache), "inspect", "--type", "image", reference]
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def ensure_base(builder: str, cache: Path) -> str:
    """Build the Debian base image once per recipe; return its reference."""
    key = base_key()
    reference = base_reference(key)
    if _exists(builder, cache, reference):
        return reference
    rootfs = cache / f"base-{key}.rootfs.tar"
    if not rootfs.exists():
        tmp = rootfs.with_suffix(".tmp")
        _run(
            [
                "mmdebstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                # No apt lists or caches in the image; the base needs no apt at run time.
                "--customize-hook=rm -rf $1/var/lib/apt/lists/* $1/var/cache/apt/*",
                *(f"--dpkgopt=path-exclude={p}" for p in BASE_PATH_EXCLUDES),
                "--format=tar",
                BASE_SUITE,
                str(tmp),
            ]
        )
        tmp.rename(rootfs)
    flags = storage_flags(builder, cache)
    ctr = _run([*flags, "from", "scratch"], stdout=subprocess.PIPE).stdout.strip()
    try:
        _run([*flags, "add", ctr, str(rootfs), "/"])
        _run(
            [
                *flags,
                "config",
                "--env",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--env",
                "LANG=C.UTF-8",
                "--cmd",
                "python3",
                "--label",
                f"org.opencontainers.image.description=Debian {BASE_SUITE} minbase with "
                + " ".join(BASE_PACKAGES),
                ctr,
            ]
        )
        _run([*flags, "commit", "--format", "oci", ctr, reference])
    finally:
        subprocess.run([*flags, "rm", ctr], capture_output=True, check=False)
    return reference


def _records(cache: Path, names: Iterable[str]) -> dict[str, Record | None]:
    out: dict[str, Record | None] = {}
    for name in names:
        try:
            out[name] = Record(**json.loads((cache / f"{name}.json").read_text()))
        except (OSError, ValueError, TypeError):
            out[name] = None
    return out


def unpacked_bytes(archive: Path) -> int:
    """The size a node unpacks: the image's layers, decompressed, read from the OCI archive."""
    with tarfile.open(archive) as tar:

        def blob(digest: str) -> IO[bytes]:
            member = tar.extractfile(f"blobs/{digest.replace(':', '/')}")
            assert member is not None, digest
            return member

        index = json.load(blob_or(tar, "index.json"))
        manifest = json.load(blob(index["manifests"][0]["digest"]))
        total = 0
        for layer in manifest["layers"]:
            stream: IO[bytes] | gzip.GzipFile = blob(layer["digest"])
            if layer["mediaType"].endswith("+gzip"):
                stream = gzip.GzipFile(fileobj=stream)
            while chunk := stream.read(1 << 20):
                total += len(chunk)
        return total


def blob_or(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    member = tar.extractfile(name)
    if member is None:
        raise ValueError(f"{name} missing from the archive")
    return member


def build(names: Sequence[str], tag: str, force: bool, builder: str, cache: Path) -> list[Record]:
    """Build what changed; one build at a time per cache, as the prune after one would
    remove the untagged steps of another in progress."""
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build(names, tag, force, builder, cache)


def _build(names: Sequence[str], tag: str, force: bool, builder: str, cache: Path) -> list[Record]:
    base = ensure_base(builder, cache)
    build_args = {BASE_ARG: base}
    patterns = read_ignore_patterns(IGNORE_FILE.read_text())
    keys = {}
    for name in names:
        dockerfile = (IMAGES_DIR / name / "Dockerfile").read_bytes()
        files = context_files(REPO, copy_sources(dockerfile.decode()), patterns)
        keys[name] = image_key(
            dockerfile, [(f, (REPO / f).read_bytes()) for f in files], build_args
        )
    present = {n for n in names if (cache / f"{n}.oci.tar").exists()}
    records = _records(cache, names)
    ca = CA_BUNDLE if Path(CA_BUNDLE).exists() else None
    done = []
    steps = plan(keys, records, present, tag, force)
    for step in steps:
        archive = cache / f"{step.name}.oci.tar"
        if not step.build:
            print(f"{step.name}: up to date ({step.key})", file=sys.stderr)
            record = records[step.name]
            assert record is not None
            done.append(record)
            continue
        started = time.monotonic()
        _run(
            bud_argv(
                builder, cache, step.name, step.reference, build_args=build_args, ca_bundle=ca
            ),
            cwd=REPO,
        )
        tmp = archive.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        flags = storage_flags(builder, cache)
        _run([*flags, "push", step.reference, f"oci-archive:{tmp}:{step.reference}"])
        tmp.rename(archive)
        record = Record(
            name=step.name,
            key=step.key,
            reference=step.reference,
            archive=str(archive),
            archive_bytes=archive.stat().st_size,
            image_bytes=unpacked_bytes(archive),
            build_seconds=round(time.monotonic() - started, 1),
            built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        (cache / f"{step.name}.json").write_text(json.dumps(asdict(record), indent=2) + "\n")
        done.append(record)
    if any(step.build for step in steps):
        # Not checked: an image a container still uses stays, and that is no failure.
        subprocess.run(prune_argv(builder, cache), capture_output=True, check=False)
    return done


def push(names: Sequence[str], registry: str, tag: str, cache: Path) -> None:
    for name, record in _records(cache, names).items():
        if record is None:
            raise SystemExit(f"{name} is not built: run `make images` first")
        _run(push_argv(Path(record.archive), image_reference(name, tag, registry)))


def _table(records: Iterable[Record]) -> str:
    rows = [f"{'image':<16} {'archive MiB':>11} {'image MiB':>9} {'build s':>8}  reference"]
    for r in records:
        rows.append(
            f"{r.name:<16} {r.archive_bytes / 2**20:>11.1f} {r.image_bytes / 2**20:>9.1f}"
            f" {r.build_seconds:>8.1f}  {r.reference}"
        )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    available = sorted(p.parent.name for p in IMAGES_DIR.glob("*/Dockerfile"))
    ap = argparse.ArgumentParser(prog="images/build.py", description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=default_cache())
    ap.add_argument("--tag", default=os.environ.get("KUBESWEEP_IMAGE_TAG", "dev"))
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build what changed (default: all but optional images)")
    b.add_argument("names", nargs="*")
    b.add_argument("--force", action="store_true", help="rebuild even when the key matches")
    b.add_argument("--builder", default=os.environ.get("KUBESWEEP_IMAGE_BUILDER", "buildah"))
    p = sub.add_parser("push", help="copy the built archives to a registry")
    p.add_argument("names", nargs="*")
    p.add_argument("--registry", required=True, help="e.g. registry.example:5000/team")
    sub.add_parser("list", help="the built archives and their sizes")
    args = ap.parse_args(argv)
    if args.cmd == "build":
        if not shutil.which(args.builder):
            raise SystemExit(f"{args.builder} is not installed (Debian: apt-get install buildah)")
        names = select_images(available, args.names)
        print(_table(build(names, args.tag, args.force, args.builder, args.cache)))
    elif args.cmd == "push":
        push(select_images(available, args.names), args.registry, args.tag, args.cache)
    else:
        records = [r for r in _records(args.cache, available).values() if r is not None]
        print(_table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
