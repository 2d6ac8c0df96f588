"""Sends COUNT messages through an Apogee broker with the C++ RocketMQ client (PyPI `rocketmq`),
then consumes them with its push consumer in a new group.

Usage: python3 broker_roundtrip.py NAMESRV_ADDR TOPIC COUNT
Prints one JSON line {"sent": [...], "received": [...]}; exits 1 on any error.
"""
import json
import sys

from rocketmq.client import Message, Producer

from consume import consume


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

    received = consume(addr, topic, "GID_apogee_py", count)
    print(json.dumps({"sent": sent, "received": received}), flush=True)
    return 0 if len(received) >= count else 1


if __name__ == "__main__":
    sys.exit(main())
