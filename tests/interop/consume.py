"""Consumes COUNT messages of TOPIC with the C++ RocketMQ client's push consumer (PyPI
`rocketmq`) in a new group GROUP, or gives up after 40 s. The other scripts consume with
`consume()`.

Usage: python3 consume.py NAMESRV_ADDR TOPIC GROUP COUNT
Prints one JSON line {"received": [{"body", "tags", "keys"}, ...]}; exits 1 if fewer arrived.
"""
import json
import sys
import threading
import time

from rocketmq.client import PushConsumer


def describe(msg):
    return {"body": msg.body.decode(), "tags": msg.tags.decode(), "keys": msg.keys.decode()}


def consume(addr, topic, group, count, describe=describe, timeout=40):
    """What `describe` makes of each message that arrives, until COUNT did or TIMEOUT passed."""
    received = []
    lock = threading.Lock()

    def on_message(msg):
        with lock:
            received.append(describe(msg))

    consumer = PushConsumer(group)
    consumer.set_namesrv_addr(addr)
    consumer.subscribe(topic, on_message)
    consumer.start()
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            with lock:
                if len(received) >= count:
                    break
            time.sleep(0.05)
    finally:
        consumer.shutdown()
    return received


def main():
    addr, topic, group, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    received = consume(addr, topic, group, count)
    print(json.dumps({"received": received}), flush=True)
    return 0 if len(received) >= count else 1


if __name__ == "__main__":
    sys.exit(main())
