"""``trialTemplate.checkpoints``: where trials keep checkpoints, and find their parent's.

A promoted Hyperband, ASHA or BOHB trial, or a Population Based Training step,
continues the training of an earlier trial, its *parent*. It can do so only when
the parent left a checkpoint somewhere the child can read. Two places are
supported, because clusters differ in what they have:

- a PersistentVolumeClaim the user provides (``volumeClaim``), mounted into the
  primary container at ``mountPath``; ReadWriteMany when trials run on several
  nodes. The operator never creates, owns or deletes it, so deleting an
  Experiment leaves the checkpoints in place (``docs/trial-jobs.md`` says how to
  clean up);
- an object-store URI prefix (``uri``), passed to the trainer as text: the
  trainer's own library (fsspec, boto3, gcsfs) writes there.

Either way each trial owns one directory, ``<root>/<experiment>/<trial>``, so
parallel trials never write into each other's checkpoints and one experiment's
checkpoints are removed with one directory.
"""

from __future__ import annotations

import re
from typing import ClassVar

from pydantic import Field

from kubesweep.api.base import ApiModel, Rule

#: A PersistentVolumeClaim's name: a DNS subdomain.
CLAIM_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
#: An absolute path without empty components (a trailing ``/`` is allowed).
MOUNT_PATH_PATTERN = r"^(/[^/]+)*/?$"
#: ``scheme://rest``, e.g. ``s3://bucket/sweeps`` or ``gs://bucket``.
URI_PATTERN = r"^[a-z][a-z0-9+.-]*://[^\s]+$"
DEFAULT_MOUNT_PATH = "/checkpoints"
#: A ``.`` or ``..`` path component.
DOT_COMPONENT = r"(^|/)[.][.]?(/|$)"


class Checkpoints(ApiModel):
    """Where each trial writes its checkpoint and where a child finds its parent's."""

    volume_claim: str | None = Field(
        default=None,
        max_length=253,
        pattern=CLAIM_NAME_PATTERN,
        description="A PersistentVolumeClaim in the trials' namespace, mounted into the "
        "primary container at mountPath; kubesweep never deletes it.",
    )
    mount_path: str = Field(
        default=DEFAULT_MOUNT_PATH,
        max_length=1024,
        pattern=MOUNT_PATH_PATTERN,
        description="Where the claim is mounted; each trial's directory is "
        "<mountPath>/<experiment>/<trial>.",
    )
    uri: str | None = Field(
        default=None,
        max_length=1024,
        pattern=URI_PATTERN,
        description="An object-store prefix such as s3://bucket/sweeps, instead of a claim; "
        "each trial's checkpoint location is <uri>/<experiment>/<trial>.",
    )

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="has(self.volumeClaim) != has(self.uri)",
            message="trialTemplate.checkpoints needs exactly one of volumeClaim (a "
            "PersistentVolumeClaim) and uri (an object-store prefix)",
            check=lambda c: (c.volume_claim is None) != (c.uri is None),
        ),
        Rule(
            cel=f"!self.mountPath.matches('{DOT_COMPONENT}')",
            message="trialTemplate.checkpoints.mountPath must not contain . or .. components",
            check=lambda c: re.search(DOT_COMPONENT, c.mount_path) is None,
            field_path=".mountPath",
        ),
    )

    @property
    def root(self) -> str:
        """The prefix every trial's directory is under: the mount path or the URI."""
        return self.uri if self.uri is not None else self.mount_path

    def location(self, experiment: str, trial: str) -> str:
        """Trial ``trial``'s own checkpoint directory (or URI prefix)."""
        return f"{self.root.rstrip('/')}/{experiment}/{trial}"
