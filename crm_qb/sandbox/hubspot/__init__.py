"""A local HubSpot: CRM v3 objects, associations, properties, owners, OAuth, webhooks and limits (DESIGN §10)."""
