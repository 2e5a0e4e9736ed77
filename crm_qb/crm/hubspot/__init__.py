"""The HubSpot connector (CRM kind ``hubspot``, DESIGN §10): CRM v3 objects, associations, properties, owners.

``connector`` builds it for a connection; ``mapping`` translates between HubSpot objects and the connector
interface (docs/hubspot/mapping.md); ``api`` is the HTTP layer with HubSpot's errors, limits and tokens;
``oauth`` and ``tokens`` handle HubSpot's OAuth; ``signature`` verifies HubSpot's request signatures.
"""
