"""panoramisk's AMI protocol, read strictly (every hotline AMI connection uses it).

Asterisk writes header values raw, and a caller's number arrives URI-unescaped from the SIP
From header: "%0D%0A%0D%0A" in it ends the genuine message early, and what follows would read
as a message of its own (SECURITY.md, "A forged event in the AMI stream"). Asterisk's exclude
filters drop such events (hotline/asterisk/ami_users.py); this is the reader's half:

- the stream is decoded as UTF-8 across reads, a byte that is not UTF-8 becoming U+FFFD.
  panoramisk decodes each read alone and drops what it cannot decode: a Cyrillic name split
  between two reads lost a letter, and a stray byte placed right after a forged blank line
  hid it from Asterisk's filter, then vanished, leaving a clean forged "Event:" line;
- a message must begin with its Event or Response line, as every one Asterisk sends does
  (after the greeting line, which panoramisk reads in the first message): anything else is
  the rest of a message a header value split, and is dropped and logged.
"""

from __future__ import annotations

import codecs
from collections import deque
from typing import Any

import structlog
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

EOL = "\r\n"
GREETING = "Asterisk Call Manager/"
MESSAGE_STARTS = ("Event:", "Response:")

log = structlog.get_logger(__name__)


class StrictAmiProtocol(AMIProtocol):  # type: ignore[misc]
    # Set by AMIProtocol.connection_made (panoramisk is untyped).
    version: str | None
    queue: deque[str]

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def data_received(self, data: bytes) -> None:
        text = self._decoder.decode(data)
        if self.version is None and text.startswith(GREETING):
            greeting, _, text = text.partition(EOL)
            self.version = greeting.removeprefix(GREETING).strip()
        if self.queue:
            text = self.queue.popleft() + text
        messages = text.split(EOL + EOL)
        self.queue.append(messages.pop(-1))
        for raw in messages:
            # Asterisk sometimes ends a message with one EOL too many (as panoramisk strips).
            raw = raw.strip()
            if not raw:
                continue
            if not raw.startswith(MESSAGE_STARTS):
                log.warning("ami_message_refused", start=raw[:60])
                continue
            message = Message.from_line(raw)
            if message is not None:
                self.handle_message(message)
