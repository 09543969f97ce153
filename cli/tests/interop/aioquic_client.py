"""A QUIC client of another implementation (aioquic) against a node.

Usage: aioquic_client.py HOST PORT ALPN

Connects with TLS 1.3 offering only ALPN, waits for the handshake to
complete or the connection to be closed, and, once connected, for the
first stream data the node sends (its Hello frame). Prints one JSON line:

  {"handshake_completed": bool, "alpn": str|null, "error_code": int|null,
   "reason": str|null, "stream_bytes": int, "first_frame_length": int|null,
   "first_frame_complete": bool}

(aioquic implements TLS 1.3 only, so a completed handshake is a TLS 1.3
one; frames are a little-endian u32 length, then the body.)

A refused ALPN shows as error_code 0x178: QUIC's CRYPTO_ERROR range
(0x100 + alert) carrying TLS alert 120, no_application_protocol.
"""

import asyncio
import json
import ssl
import sys

from aioquic.asyncio import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import (
    ConnectionTerminated,
    HandshakeCompleted,
    StreamDataReceived,
)

# The name in the node's self-signed certificate (pc-net CERTIFICATE_NAME).
SERVER_NAME = "phantom-node"


class Probe(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.result = {
            "handshake_completed": False,
            "alpn": None,
            "error_code": None,
            "reason": None,
            "stream_bytes": 0,
            "first_frame_length": None,
            "first_frame_complete": False,
        }
        self.stream_data = bytearray()
        self.settled = asyncio.get_event_loop().create_future()
        self.first_data = asyncio.get_event_loop().create_future()

    def quic_event_received(self, event):
        if isinstance(event, HandshakeCompleted):
            self.result["handshake_completed"] = True
            self.result["alpn"] = event.alpn_protocol
            if not self.settled.done():
                self.settled.set_result(None)
        elif isinstance(event, ConnectionTerminated):
            self.result["error_code"] = event.error_code
            self.result["reason"] = event.reason_phrase
            if not self.settled.done():
                self.settled.set_result(None)
            if not self.first_data.done():
                self.first_data.set_result(None)
        elif isinstance(event, StreamDataReceived):
            self.stream_data.extend(event.data)
            self.result["stream_bytes"] = len(self.stream_data)
            if len(self.stream_data) >= 4 and self.result["first_frame_length"] is None:
                self.result["first_frame_length"] = int.from_bytes(
                    self.stream_data[:4], "little"
                )
            length = self.result["first_frame_length"]
            if length is not None and len(self.stream_data) >= 4 + length:
                self.result["first_frame_complete"] = True
                if not self.first_data.done():
                    self.first_data.set_result(None)


async def main(host, port, alpn):
    configuration = QuicConfiguration(
        is_client=True,
        alpn_protocols=[alpn],
        verify_mode=ssl.CERT_NONE,
        server_name=SERVER_NAME,
    )
    protocol = None
    try:
        async with connect(
            host,
            port,
            configuration=configuration,
            create_protocol=Probe,
            wait_connected=False,
        ) as client:
            protocol = client
            # connect(wait_connected=False) queues the Initial; send it.
            client.transmit()
            await asyncio.wait_for(protocol.settled, 10)
            if protocol.result["handshake_completed"]:
                try:
                    await asyncio.wait_for(protocol.first_data, 5)
                except asyncio.TimeoutError:
                    pass
                client.close()
    except (ConnectionError, asyncio.TimeoutError) as error:
        if protocol is not None and protocol.result["reason"] is None:
            protocol.result["reason"] = repr(error)
    result = protocol.result if protocol is not None else {"error": "no connection"}
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: aioquic_client.py HOST PORT ALPN")
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
