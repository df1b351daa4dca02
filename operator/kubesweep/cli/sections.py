"""``kubesweep --help`` with its commands in groups, each description whole.

Click lists a group's commands in one alphabetical block and cuts each
description to what fits beside the longest name, mid-sentence. A new user
then cannot tell the commands that run a sweep on this machine from those that
read results (from a cluster or a local run) or those that change a cluster,
nor finish reading what each does. Here each command sits under its group and
its first sentence is shown whole, wrapped.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

#: Room for a command's first sentence: whole, however long (the formatter wraps it).
_WHOLE = 10_000


class SectionedGroup(click.Group):
    """A group whose help lists its commands under titled sections, in the sections' order.

    ``sections`` pairs a title with command names; a command in no section is
    listed last under "Other commands".
    """

    def __init__(
        self, *args: object, sections: Sequence[tuple[str, Sequence[str]]] = (), **kwargs: object
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.sections = [(title, tuple(names)) for title, names in sections]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Each section's commands with their first sentence, whole."""
        visible = {
            name: command
            for name in self.list_commands(ctx)
            if (command := self.get_command(ctx, name)) is not None and not command.hidden
        }
        listed: set[str] = set()
        groups: list[tuple[str, list[str]]] = []
        for title, names in self.sections:
            present = [name for name in names if name in visible]
            listed.update(present)
            groups.append((title, present))
        groups.append(("Other commands", [name for name in visible if name not in listed]))
        for title, shown in groups:
            if not shown:
                continue
            rows = [(name, visible[name].get_short_help_str(_WHOLE)) for name in shown]
            with formatter.section(title):
                formatter.write_dl(rows)
