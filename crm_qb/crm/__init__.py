"""The CRM side: the connector interface (``protocol``), the factory that builds a connection's connector by its
CRM kind (``factory``), and one module or package per kind (``rest``: the REST contract of docs/architecture.md §5).
"""
