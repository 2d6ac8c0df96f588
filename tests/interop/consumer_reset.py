"""Consumes TOPIC with the C++ RocketMQ client's push consumer (PyPI `rocketmq`) in group GROUP
until every one of COUNT messages arrived twice (the test resets the group's offsets in
between), or 60 s passed. Prints a JSON line per message as it arrives, then one with all.

Usage: python3 consumer_reset.py NAMESRV_ADDR TOPIC GROUP COUNT
"""
import json
import sys
import threading
import time

from rocketmq.client import PushConsumer


def main():
    addr, topic, group, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    received = []
    lock = threading.Lock()

    def on_message(msg):
        body = msg.body.decode()
        with lock:
            received.append(body)
        print(json.dumps({"received": body}), flush=True)

    consumer = PushConsumer(group)
    consumer.set_namesrv_addr(addr)
    consumer.subscribe(topic, on_message)
    consumer.start()
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            with lock:
                if len(received) >= 2 * count:
                    break
            time.sleep(0.1)
    finally:
        consumer.shutdown()
    print(json.dumps({"all": received}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
