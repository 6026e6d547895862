"""A cap on multipart request bodies (the only uploads: service-request attachments).

The CSRF check reads a form before any route runs (dashboard/auth.py), and Starlette spools
every uploaded part to disk: without a cap, one request could fill the disk. A multipart body
that announces more than `max_bytes` (Content-Length) is refused at once with 413; one that
sends more without announcing it (chunked) is cut off at the cap, also with 413. Other bodies
are not touched.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# What a form adds around the file: boundaries, part headers, the CSRF token and small fields.
FORM_OVERHEAD = 64 * 1024


def _refusal(max_bytes: int) -> bytes:
    message = f"the upload is too large: at most {max_bytes - FORM_OVERHEAD} bytes per file"
    return json.dumps({"detail": {"code": "too_large", "message": message}}).encode()


class UploadLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._multipart(scope):
            await self.app(scope, receive, send)
            return
        announced = self._header(scope, b"content-length")
        if announced is not None and (not announced.isdigit() or int(announced) > self.max_bytes):
            await self._refuse(send)
            return
        seen = 0
        exceeded = False
        started = False

        async def counted() -> Message:
            # Past the cap the app is told the client left: it stops reading, whatever
            # middleware or task group sits between (an exception raised here would reach
            # FastAPI wrapped in an ExceptionGroup and become a 400).
            nonlocal seen, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    exceeded = True
                    return {"type": "http.disconnect"}
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # the app's answer to a "disconnect" is replaced by the 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await self._refuse(send)

    @staticmethod
    def _header(scope: Scope, name: bytes) -> str | None:
        for key, value in scope.get("headers", ()):
            if key.lower() == name:
                return str(value.decode("latin-1").strip())
        return None

    def _multipart(self, scope: Scope) -> bool:
        content_type = self._header(scope, b"content-type") or ""
        return content_type.lower().startswith("multipart/")

    async def _refuse(self, send: Send) -> None:
        body = _refusal(self.max_bytes)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
