"""Channel variables shared by the dialplan (asterisk_conf/extensions.conf.j2) and Python.

The dialplan reads these after the FastAGI script returns; change a name here and in the
template together.
"""

# Set by the FastAGI script: the Asterisk queue the caller goes to (one of settings.QUEUES).
QUEUE = "HOTLINE_QUEUE"
# The recognised problem (canonical intent id: water, electricity, heating, lift, meters, operator).
INTENT = "HOTLINE_INTENT"
# The menu key the caller pressed, or empty.
MENU_CHOICE = "HOTLINE_MENU_CHOICE"
# Queue priority (higher is served first), e.g. for emergencies.
PRIORITY = "HOTLINE_PRIORITY"
# Set by the dialplan when it routes without the FastAGI script ("agi" = AGI failed).
FALLBACK = "HOTLINE_FALLBACK"
# The call log row id, for later dialplan steps that want to reference it. Set when the row is
# already written as the menu ends (normally; the menu never waits for the database).
CALL_ID = "HOTLINE_CALL_ID"
# Set by the FastAGI script as soon as it knows the call's company (call_router/
# tenant_routing.py), before anything about it is written: the tenant's slug ("" = the
# centre's own), how it was decided (call_router/tenant_routing.py SOURCES), and the
# caller's building id when known.
TENANT = "HOTLINE_TENANT"
TENANT_SOURCE = "HOTLINE_TENANT_SOURCE"
BUILDING = "HOTLINE_BUILDING"
# Global set in extensions.conf [globals]: the recordings folder as Asterisk sees it (inside
# the sandbox root it differs from the host path).
# Prompts are played as ${HOTLINE_RECORDINGS}/prompts/<lang>/<name>.
RECORDINGS = "HOTLINE_RECORDINGS"

# The dialplan hands these to the FastAGI script as the AGI's arguments (agi_arg_1, agi_arg_2
# of the environment), so it need not ask for them (a GET VARIABLE round trip each); without
# them (an older dialplan) the script asks.
ARG_LINKEDID = "agi_arg_1"
ARG_RECORDINGS = "agi_arg_2"
