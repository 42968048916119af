"""The classic chat server, as a yardstick: one thread per client, a global list.

Speaks chatd's line protocol (a prompt, the first line is the nickname, chat
reaches the others as ``<nick> text``), so ``chatd bench`` measures it the same
way. Deliberately the design chatd replaces: each broadcast holds a global lock
and calls sendall() once per recipient, so one slow reader stalls every sender,
and memory is a thread (and its stack) per client. Not part of chatd.

    python bench/threaded_server.py --port 9001
"""

from __future__ import annotations

import argparse
import socket
import threading

clients: dict[socket.socket, str] = {}  # every named client -> its nickname
lock = threading.Lock()


def broadcast(data: bytes, sender: socket.socket | None) -> None:
    with lock:
        for client in list(clients):
            if client is not sender:
                try:
                    client.sendall(data)
                except OSError:
                    clients.pop(client, None)


def serve(client: socket.socket) -> None:
    buf = b""
    try:
        client.sendall(b"*** Choose a nickname:\n")
        nick = ""
        while True:
            data = client.recv(65536)
            if not data:
                break
            buf += data
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                text = raw.decode("utf-8", "replace").rstrip("\r")
                if not nick:
                    nick = text.strip() or "anonymous"
                    client.sendall(f"*** Welcome, {nick}!\n".encode())
                    broadcast(f"*** {nick} joined\n".encode(), client)
                    with lock:
                        clients[client] = nick
                elif text:
                    broadcast(f"<{nick}> {text}\n".encode(), client)
    except OSError:
        pass
    finally:
        with lock:
            clients.pop(client, None)
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    args = parser.parse_args()
    threading.stack_size(256 * 1024)  # 10,000 clients must fit in address space
    server = socket.create_server((args.host, args.port), backlog=1024)
    print(f"listening on {args.host}:{server.getsockname()[1]}", flush=True)
    while True:
        client, _ = server.accept()
        threading.Thread(target=serve, args=(client,), daemon=True).start()


if __name__ == "__main__":
    main()
