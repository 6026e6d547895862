"""The Asterisk the hotline runs on: config rendering (`render`) and the runner (`sandbox`)."""
