"""The bare-asyncio FastAGI reference: the thin six-command menu, nothing else.

What a FastAGI server costs at the least on this machine, so the Hotline server's numbers can
be read as a ratio in the same run: ANSWER, GET VARIABLE CHANNEL(linkedid), STREAM FILE
greeting, GET DATA menu, SET VARIABLE HOTLINE_INTENT, SET VARIABLE HOTLINE_QUEUE.

    python bench/agi/reference_server.py PORT [--uvloop]

The issue's reference is bare asyncio (the stdlib loop); `--uvloop` runs the same code on
uvloop, the loop the Hotline server uses by default, for the like-for-like ratio.
"""

from __future__ import annotations

import asyncio
import sys

QUEUES = {"1": "water", "2": "electricity", "3": "heating", "4": "lift", "0": "coordinator"}


async def command(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: str) -> str:
    writer.write(line.encode() + b"\n")
    while True:
        reply = await reader.readline()
        if not reply:
            raise ConnectionError("closed")
        if reply.startswith(b"HANGUP"):
            continue  # AGISIGHUP: the next line is the reply
        text = reply.decode()
        if text.startswith("200 result=-1") or text.startswith("511"):
            raise ConnectionError("hung up")
        return text


async def serve_call(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await asyncio.wait_for(reader.readuntil(b"\n\n"), 5)
        await command(reader, writer, "ANSWER")
        await command(reader, writer, "GET VARIABLE CHANNEL(linkedid)")
        await command(reader, writer, 'STREAM FILE "/prompts/ru/greeting" "0123456789*"')
        reply = await command(reader, writer, 'GET DATA "/prompts/ru/menu" 5000 1')
        digit = reply.split("result=", 1)[1].split(" ", 1)[0].strip()
        queue = QUEUES.get(digit, "coordinator")
        await command(reader, writer, f'SET VARIABLE HOTLINE_INTENT "{queue}"')
        await command(reader, writer, f'SET VARIABLE HOTLINE_QUEUE "{queue}"')
    except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, IndexError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(serve_call, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if "--uvloop" in sys.argv[2:]:
        import uvloop

        uvloop.run(main(int(sys.argv[1])))
    else:
        asyncio.run(main(int(sys.argv[1])))
