"""Sends COUNT messages through an Apogee broker with the C++ RocketMQ client (PyPI `rocketmq`),
then consumes them with its push consumer in a new group.

Usage: python3 broker_roundtrip.py NAMESRV_ADDR TOPIC COUNT
Prints one JSON line {"sent": [...], "received": [...]}; exits 1 on any error.
"""
import json
import sys
import threading
import time

from rocketmq.client import Message, Producer, PushConsumer


def main():
    addr, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    producer = Producer("PID_apogee_py")
    producer.set_namesrv_addr(addr)
    producer.start()
    sent = []
    try:
        for i in range(count):
            msg = Message(topic)
            msg.set_keys("key-%d" % i)
            msg.set_tags("TagA")
            msg.set_body("hello from cpp %d" % i)
            r = producer.send_sync(msg)
            sent.append({"status": int(r.status), "msgId": r.msg_id, "offset": r.offset})
    finally:
        producer.shutdown()

    received = []
    lock = threading.Lock()

    def on_message(msg):
        with lock:
            received.append({"body": msg.body.decode(), "tags": msg.tags.decode(), "keys": msg.keys.decode()})

    consumer = PushConsumer("GID_apogee_py")
    consumer.set_namesrv_addr(addr)
    consumer.subscribe(topic, on_message)
    consumer.start()
    try:
        deadline = time.time() + 40
        while time.time() < deadline:
            with lock:
                if len(received) >= count:
                    break
            time.sleep(0.1)
    finally:
        consumer.shutdown()
    print(json.dumps({"sent": sent, "received": received}), flush=True)
    return 0 if len(received) >= count else 1


if __name__ == "__main__":
    sys.exit(main())
