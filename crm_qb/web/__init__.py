"""The web app: the contact panel, the JSON API, the admin pages and the OAuth views, with their read models."""
