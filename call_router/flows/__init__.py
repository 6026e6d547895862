"""Voice-menu definitions: the flow schema, loading and validation, calendars and prompts."""
