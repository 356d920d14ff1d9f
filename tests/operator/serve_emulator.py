"""Serve the hardened emulator in a process of its own (for benchmarks and manual runs).

    python tests/operator/serve_emulator.py [--port 0] [--request-history 1]

Prints ``READY <url>`` once it listens; serves until SIGTERM/SIGINT.
"""
from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import kmock  # noqa: E402
from emulator import HardenedEmulator  # noqa: E402


async def serve(port: int, history: int | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with HardenedEmulator(request_history=history) as emulator, \
            kmock.Server(emulator, host='127.0.0.1', port=port or None):
        print(f'READY {str(emulator.url).rstrip("/")}', flush=True)
        await stop.wait()
        await emulator.close_watches()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--port', type=int, default=0)
    parser.add_argument('--request-history', type=int, default=1,
                        help='past requests kept for kmock filters (its scans are O(history) per request)')
    parser.add_argument('--profile', default=None, help='write cProfile statistics here on exit')
    args = parser.parse_args()
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.runcall(asyncio.run, serve(args.port, args.request_history))
        profiler.dump_stats(args.profile)
    else:
        asyncio.run(serve(args.port, args.request_history))
    return 0


if __name__ == '__main__':
    sys.exit(main())
