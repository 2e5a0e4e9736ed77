"""The sync's pure rules: no I/O, no database, no clock of their own (``today`` is an argument).

Everything here is a function of its arguments, tested with tables of cases: the canonical contact, the QBO and
CRM mappings, the three-way merge, identity matching, money, transaction statuses, folder fields, follow-up
rules. The capability packages beside this one apply them to the database, QBO and the CRM.
"""
