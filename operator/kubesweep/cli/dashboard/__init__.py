"""``kubesweep dashboard``: a read-only web UI that follows sweeps while they run.

:mod:`.views` turns what a source holds into the JSON the pages show (the
experiment page's plots are the report's, from :mod:`kubesweep.cli.report.data`);
:mod:`.server` serves the pages, that JSON and a stream of server-sent events that
tells a page when the runs it shows changed. Nothing in it writes.
"""
