"""The first sync and history imports: preview → start → progress → report, around the backfill.

Connecting QuickBooks writes nothing by itself: it opens a *first sync* run (``service.open_first_sync``) and
asks a worker for its preview, which is the backfill's dry run with every record's predicted outcome kept
(``runner``). Starting the run runs the real backfill with the same recording, one checkpoint per page, so a
killed worker resumes after the last finished page; then the follow-up scan. A *history import* mirrors the
transactions of a date range the same way. ``store`` keeps runs and records; ``outcomes`` names what happened in
words.
"""
