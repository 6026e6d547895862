"""Voice menus as data: flow files (ivr_flows/*.yaml), their validation, and the engine."""
