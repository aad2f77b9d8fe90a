"""The CPU study (``make study``): six positional-encoding strategies x several training seeds on
the shapes data set (the photo set optional), scored at 0.5x-2x the training resolution with
intervals across seeds. ``plan`` says what runs where, ``jobs`` runs processes side by side,
``objects`` scores the shapes set's cells, ``intervals`` holds the statistics, ``report`` writes
docs/RESULTS.md and ``run`` is the entry point."""
