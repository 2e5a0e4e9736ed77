"""What brings changes into the sync and settles them.

``events`` is the inbound-event state machine (stored, pending, processed, ignored, failed); ``drain`` works
through a realm's or a connection's pending events, ``units`` turns a batch into units of work for the
capabilities; ``poll`` catches up with QBO's change data capture; ``backfill`` brings a newly connected company in
line in full. The jobs in ``workers/`` only call these.
"""
