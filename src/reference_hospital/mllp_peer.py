"""One MLLP connection of a simulated system (the lab, the bridge): every block gets an ACK.

What a real interface engine does on the wire, and what the harness's tests rely on: a
block that is not MLLP is refused once (AR) and the line is closed; a message the system
cannot take because of a bug in it still gets an error ACK (AE), never a silent drop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from rehearsal.clients import hl7 as mllp

log = logging.getLogger("reference_hospital")


async def answer_each_block(
    reader: Any,
    writer: Any,
    receive: Callable[[bytes], str],
    bare_ack: Callable[[str, str, str], str],
    could_not: str,
) -> None:
    """``receive`` gives the ACK to each block; ``bare_ack(code, control_id, text)`` one for broken input.

    ``could_not`` starts the AE text when ``receive`` fails ("the lab could not take the order").
    """
    try:
        while True:
            try:
                block = await reader.readblock()
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            except Exception:  # noqa: BLE001 - not an MLLP block: say so once, then hang up
                writer.write(mllp.frame(bare_ack("AR", "", "not an MLLP block")))
                await writer.drain()
                return
            try:
                reply = receive(block)
            except Exception as exc:  # a bug must come back as an error ACK, not a dropped line
                log.exception("%s", could_not)
                reply = bare_ack("AE", "", f"{could_not}: {exc.__class__.__name__}")
            writer.write(mllp.frame(reply))
            await writer.drain()
    finally:
        writer.close()
