# The call log's timeline kinds: what each call_events row says happened (one place, read by
# the writers, the outcome rules, reports and the dashboard).

# Timeline kinds other writers (AGI server, dialplan hooks) may record and outcomes rely on.
# A voicemail message was left (VMSTATUS=SUCCESS); "offered" is only the greeting played.
EVENT_VOICEMAIL = "voicemail"
EVENT_VOICEMAIL_OFFERED = "voicemail_offered"
EVENT_AFTER_HOURS = "after_hours"
# data {"status": QUEUESTATUS}: why Queue() returned without an operator.
EVENT_QUEUE_STATUS = "queue_status"
EVENT_QUEUE_JOIN = "queue_join"
EVENT_QUEUE_LEAVE = "queue_leave"
EVENT_ABANDON = "abandon"
EVENT_RING = "ring"
EVENT_RING_NO_ANSWER = "ring_no_answer"
EVENT_CONNECT = "agent_connect"
EVENT_COMPLETE = "agent_complete"
EVENT_HANGUP = "hangup"
EVENT_RECONCILED = "reconciled"
# The router closed the call because Asterisk went away (restart, crash) while it was open.
EVENT_DROPPED = "dropped"
# Supervisors' call control (call_router/call_control/): who ended or moved the call.
EVENT_ENDED_BY_SUPERVISOR = "ended_by_supervisor"
EVENT_MOVED = "moved"
EVENT_MENU_RESULT = "menu_result"
# One node of the voice menu's flow visited (agi_scripts/flows/engine.py). Stored several to a
# row as EVENT_FLOW_STEPS (the steps between two waits for the caller); read back one entry per
# step (call_router/timeline_items.py). Older rows hold one step each (EVENT_FLOW_STEP).
EVENT_FLOW_STEP = "flow_step"
EVENT_FLOW_STEPS = "flow_steps"
# What the speech menu heard, with the audio kept (the flow's own "speech" step has no file).
EVENT_UTTERANCE = "utterance"
EVENT_CALLBACK = "callback"
EVENT_CALLBACK_SKIPPED = "callback_skipped"
# Virtual hold: the caller pressed 1 in a queue (call_router/virtual_hold.py).
EVENT_CALLBACK_REQUESTED = "callback_requested"
# The FastAGI server failed (died, refused, broke) and the dialplan sent the caller to the
# coordinator; data {"status": AGISTATUS, "queue"}.
EVENT_AGI_FAILED = "agi_failed"
